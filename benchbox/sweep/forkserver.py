"""The client of a forkserver: a process that imported torch and benchbox once and forks
a sweep's workers.

A run of a sweep has a process of its own, so that its crash, NaN or out-of-memory kill
ends it alone; started fresh, that process spends seconds importing torch before any
work. The server (:mod:`benchbox.sweep.server`) imports what a run uses once
(:mod:`benchbox.sweep.preload`) and forks one child per job, which starts with all of it
loaded. Python's ``multiprocessing`` forkserver is not used: its children re-run the
parent's main script (a Ray worker's, or any script's), and one server per process
would outlive the sweep. A server is started fresh, or is the spare forked from the
sweep's driver before it imported torch (:mod:`benchbox.sweep.spare`).

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
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from benchbox.sweep.job import Job, Outcome, thread_vars
from benchbox.sweep.spare import Spare, take_spare

__all__ = ["Child", "ForkServer", "shared"]


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

    def __init__(
        self, env: Mapping[str, str] | None = None, threads: int = 0, *, inherit: bool = False
    ) -> None:
        """Start a server with ``env`` (default: this process's environment) and, given
        ``threads``, its children's thread limits (OpenMP and BLAS read theirs when
        torch and numpy are imported, in the server; each child also sets its own).

        With ``inherit``, the spare that :func:`benchbox.sweep.spare.fork_spare` forked
        from this process, if one is there, becomes the server: its imports started
        earlier, with no interpreter to start.
        """
        env = {**(os.environ if env is None else env), **(thread_vars(threads) if threads else {})}
        spare = take_spare() if inherit else None
        self.inherited = spare is not None
        self.proc: subprocess.Popen[bytes] | Spare
        if spare is not None:
            spare.start(env)
            self.proc = spare
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchbox.sweep.server"],
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
