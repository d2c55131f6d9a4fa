"""A server process that imported torch and benchbox once and forks a sweep's workers.

A run of a sweep has a process of its own, so that its crash, NaN or out-of-memory kill
ends it alone; started fresh, that process spends seconds importing torch before any
work. The server (``python -m benchbox.sweep.forkserver``) imports what a run uses once
(:mod:`benchbox.sweep.preload`) and forks one child per job, which starts with all of it
loaded. Python's ``multiprocessing`` forkserver is not used: its children re-run the
parent's main script (a Ray worker's, or any script's), and one server per process
would outlive the sweep.

Protocol, one JSON object per line: the client writes ``{"id", "job", "env", "cwd",
"owner"}`` on the server's standard input; the server answers ``{"id", "pid"}`` once
the child is forked, and ``{"id", "exit", "outcome"}`` when it has ended (``exit`` as
:func:`os.waitstatus_to_exitcode` gives it, negative for a signal; ``outcome`` None if
the child died without one). The server has no thread: it never forks while another
thread could hold a lock, and torch has started no thread pool in it (only imports).

The server ends when its standard input closes, which happens when its client (the
sweep's driver, or the Ray worker) closes it or dies, once its last child has ended.
Its children end with the process that asked for them (:mod:`benchbox.sweep.lifeline`)
and, on Linux, with the server. (The server itself takes no parent-death signal: Linux
sends it when the *thread* that started the server ends, which may be long before the
process that owns it.)
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchbox.sweep.job import Job, Outcome, thread_vars

__all__ = ["Child", "ForkServer", "serve", "shared"]


# -- the client: the driver's (or the Ray worker's) side -------------------------------
@dataclass
class Child:
    """A worker the server forked: its pid, and once it ended, its exit code and
    outcome. ``exit`` stays None while it runs."""

    id: int
    pid: int = 0
    exit: int | None = None
    outcome: Outcome | None = None
    lost: str = ""
    abandoned: bool = False
    forked: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float) -> int | None:
        """The exit code once the child ended, else None after ``timeout`` seconds."""
        self.ended.wait(timeout)
        return self.exit if self.ended.is_set() else None


class ForkServer:
    """A running server and the children it forked for this process.

    Use it as a context manager (or call :meth:`close`); closing it ends the server
    once its children have ended.
    """

    def __init__(self, env: Mapping[str, str] | None = None, threads: int = 0) -> None:
        """Start a server with ``env`` (default: this process's environment) and, given
        ``threads``, its children's thread limits (OpenMP and BLAS read theirs when
        torch and numpy are imported, in the server)."""
        env = {**(os.environ if env is None else env), **(thread_vars(threads) if threads else {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchbox.sweep.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at the terminal is the driver's to handle.
            start_new_session=True,
        )
        self._children: dict[int, Child] = {}
        self._lock = threading.Lock()
        self._next = 0
        self.error = ""
        self._errors: list[str] = []
        for target in (self._read, self._read_errors):
            threading.Thread(target=target, name="benchbox-forkserver", daemon=True).start()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.error

    def fork(
        self,
        job: Job,
        owner: tuple[int, str | None],
        env: Mapping[str, str] | None,
        cwd: str | None,
    ) -> Child:
        """Ask for a child running ``job`` and wait until it is forked (the first call
        waits for the server's imports).

        Raises:
            OSError: the server is gone.
        """
        request = {
            "job": job.to_json(),
            "owner": list(owner),
            "env": None if env is None else dict(env),
            "cwd": cwd,
        }
        with self._lock:
            if self.error:
                raise OSError(f"the worker's forkserver ended ({self.error})")
            self._next += 1
            child = Child(self._next)
            self._children[child.id] = child
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({"id": child.id, **request}) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):  # ValueError: closed by close()
                raise OSError("the worker's forkserver ended (it reads no more jobs)") from None
        try:
            while not child.forked.wait(0.5):
                if child.ended.is_set() or self.error:
                    raise OSError(f"the worker's forkserver ended ({child.lost or self.error})")
        except KeyboardInterrupt:  # e.g. ray.cancel: the child must not run unattended
            with self._lock:
                child.abandoned = True
                if child.forked.is_set():
                    _terminate(child.pid)
            raise
        return child

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
                child = self._children[int(message["id"])]
            except (ValueError, KeyError, TypeError):
                continue  # not a message: a library's stray output
            if "pid" in message:
                with self._lock:
                    child.pid = int(message["pid"])
                    child.forked.set()
                    if child.abandoned:
                        _terminate(child.pid)
            elif "exit" in message:
                if message.get("outcome") is not None:
                    child.outcome = Outcome.from_dict(message["outcome"])
                child.exit = int(message["exit"])
                child.ended.set()
        code = self.proc.wait()
        error = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if self._errors:
            error += f": {self._errors[-1][:300]}"
        with self._lock:
            self.error = error
            for child in self._children.values():
                if not child.ended.is_set():
                    child.lost = f"the forkserver process ended ({self.error})"
                    child.ended.set()

    def _read_errors(self) -> None:
        """Keep the last lines the server wrote to its standard error (it has no
        terminal: the driver's is the live table's), for the message if it dies."""
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._errors = [*self._errors[-19:], line]

    def close(self) -> None:
        """End the server: its standard input closes, it exits."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _terminate(pid: int) -> None:
    """SIGTERM (a run takes it as Ctrl-C) to a child that nobody waits for."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)


_shared: ForkServer | None = None
_shared_lock = threading.Lock()


def shared() -> ForkServer:
    """This process's long-lived server (started on first use, again if it died): what a
    Ray worker, which runs task after task, keeps between them."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            _shared = ForkServer()
        return _shared


# -- the server ------------------------------------------------------------------------
class _Server:
    """The server's state: its protocol pipe and the children it runs."""

    def __init__(self) -> None:
        # Replies go to a copy of the standard output; file descriptor 1 itself is
        # pointed at standard error, so that a library's stray print cannot corrupt the
        # protocol.
        self.out = os.dup(1)
        os.dup2(2, 1)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        self.selector = selectors.DefaultSelector()
        self.selector.register(0, selectors.EVENT_READ, "requests")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "children")
        self.running: dict[int, tuple[int, int, bytearray]] = {}  # pid -> (id, pipe, data)

    def loop(self) -> None:
        pending = b""
        closing = False
        while not (closing and not self.running):
            for key, _ in self.selector.select():
                if key.data == "requests":
                    chunk = os.read(0, 1 << 16)
                    if not chunk:  # the client is gone: fork no more, end after the last child
                        closing = True
                        self.selector.unregister(0)
                        continue
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        self.fork(json.loads(line))
                elif key.data == "children":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 1 << 12)
                elif key.data in self.running:
                    _, pipe, data = self.running[key.data]
                    if _drain(pipe, data):
                        self.selector.unregister(pipe)
            self.reap()

    def fork(self, request: dict[str, Any]) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            self._child(request, read_end, write_end)
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.running[pid] = (int(request["id"]), read_end, bytearray())
        self.selector.register(read_end, selectors.EVENT_READ, pid)
        self.reply({"id": request["id"], "pid": pid})

    def _child(self, request: dict[str, Any], read_end: int, write_end: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            mine = (self.out, self.wake_r, self.wake_w, read_end)
            for fd in (*mine, *(pipe for _, pipe, _ in self.running.values())):
                os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            from benchbox.sweep.worker import child_main

            pid, identity = request["owner"]
            code = child_main(
                request["job"], write_end, (int(pid), identity), request["env"], request["cwd"]
            )
        finally:
            os._exit(code)

    def reap(self) -> None:
        for pid in list(self.running):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 255 << 8
            if not done:
                continue
            job_id, pipe, data = self.running.pop(pid)
            _drain(pipe, data)
            if pipe in self.selector.get_map():
                self.selector.unregister(pipe)
            os.close(pipe)
            try:
                outcome = json.loads(data) if data else None
            except ValueError:
                outcome = None
            code = os.waitstatus_to_exitcode(status)
            self.reply({"id": job_id, "exit": code, "outcome": outcome})

    def reply(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the client is gone
            os.write(self.out, (json.dumps(message) + "\n").encode())


def _drain(pipe: int, data: bytearray) -> bool:
    """Read what a child wrote so far; True at the end of its pipe."""
    try:
        while chunk := os.read(pipe, 1 << 16):
            data += chunk
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return True


def serve() -> None:
    """The server's loop (see the module docstring)."""
    import benchbox.sweep.preload  # noqa: F401  (the point of the server)

    _Server().loop()
    # Nothing to clean up, and tearing down torch's modules takes seconds.
    os._exit(0)


if __name__ == "__main__":
    serve()
