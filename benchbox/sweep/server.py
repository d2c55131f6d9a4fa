"""The forkserver itself: the process that imported what a run uses and forks a
sweep's workers (its client is :class:`benchbox.sweep.forkserver.ForkServer`).

Protocol, one JSON object per line: the client writes ``{"id", "job", "env", "cwd",
"owner"}`` on the server's standard input; the server answers ``{"id", "pid"}`` once
the child is forked, and ``{"id", "exit", "outcome"}`` when it has ended (``exit`` as
:func:`os.waitstatus_to_exitcode` gives it, negative for a signal; ``outcome`` None if
the child died without one). The server has no thread: it never forks while another
thread could hold a lock, and torch has started no thread pool in it (only imports).

The server ends when its standard input closes, once its last child has ended. Started
fresh, it is ``python -m benchbox.sweep.server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
from typing import Any

__all__ = ["serve"]


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
    """Import what a run uses, then serve (see the module docstring); never returns."""
    import benchbox.sweep.preload  # noqa: F401  (the point of the server)

    _Server().loop()
    # Nothing to clean up, and tearing down torch's modules takes seconds.
    os._exit(0)


if __name__ == "__main__":
    serve()
