"""A spare forkserver: a copy of the sweep's driver, forked as its first step.

A forkserver started fresh begins importing torch and what a run uses only once the
executor that wants it is built, after the driver imported torch and the plugins itself.
A spare is forked before the driver imports torch (:func:`fork_spare`): it imports the
same modules at once, beside the driver, then waits; ``ForkServer(inherit=True)`` takes
it and sends it the environment to serve in (the first line on its standard input, one
JSON object), after which it is a server like any other (:mod:`benchbox.sweep.server`).
On a small machine the first runs of a sweep start about 1.5 s sooner.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from benchbox.sweep.server import serve

__all__ = ["Spare", "discard_spare", "fork_spare", "take_spare"]


_spare: Spare | None = None


def fork_spare() -> bool:
    """Fork this process now into a spare server, which imports what a run uses at once
    and waits until a ``ForkServer(inherit=True)`` takes it (or :func:`discard_spare` or
    the end of this process ends it), if that is safe; return whether a spare is there.

    It is safe on Linux in a process that runs one Python thread (a lock another thread
    held at the fork would stay held in the copy) and has not imported torch (so it has
    run no torch operation: a child of a process whose OpenMP pool has started hangs in
    its first parallel loop). A sweep's driver calls it first, before it imports torch
    and the plugins: the spare's imports then run beside the driver's, instead of after
    the executor that starts a server is known.
    """
    global _spare
    if _spare is not None:
        return True
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    if "torch" in sys.modules:
        return False
    _spare = Spare()
    return True


def discard_spare() -> None:
    """End a spare that no server took, at once: it may still be importing, and holds
    nothing to clean up (no child, no file of its own)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.kill()
        spare.wait()
        for stream in (spare.stdin, spare.stdout, spare.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


def take_spare() -> Spare | None:
    """The spare, if one is there, now this caller's to start (:meth:`Spare.start`)."""
    global _spare
    spare, _spare = _spare, None
    return spare


class Spare:
    """A spare server forked from this process, with what :class:`ForkServer` uses of a
    ``subprocess.Popen``: the pid, its three pipes, ``poll``, ``wait`` and ``kill``.

    Written here because ``subprocess`` only starts programs, and ``multiprocessing``'s
    fork start runs its own start-up and exit code in the child, around the pipes.
    """

    def __init__(self) -> None:
        pipes = [os.pipe() for _ in range(3)]  # (read, write) for stdin, stdout, stderr
        ends = (pipes[0][0], pipes[1][1], pipes[2][1])  # the server's
        own = (pipes[0][1], pipes[1][0], pipes[2][0])  # this process's
        for stream in (sys.stdout, sys.stderr):  # or the copy would write them again
            with contextlib.suppress(Exception):
                stream.flush()
        driver = os.getpid()
        pid = os.fork()
        if pid == 0:
            _wait_to_serve(ends, own, driver)
        for fd in ends:
            os.close(fd)
        self.pid = pid
        self.stdin: Any = os.fdopen(own[0], "wb")
        self.stdout: Any = os.fdopen(own[1], "rb")
        self.stderr: Any = os.fdopen(own[2], "rb")
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def start(self, env: Mapping[str, str]) -> None:
        """Make it a server running in ``env``."""
        self.stdin.write((json.dumps(dict(env)) + "\n").encode())
        self.stdin.flush()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forkserver {self.pid}", timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _wait_to_serve(ends: tuple[int, int, int], own: tuple[int, ...], driver: int) -> None:
    """In the spare: set up as ``python -m benchbox.sweep.server`` would be (the pipes
    ``ends`` as its standard streams, a session of its own, a fresh interpreter's signal
    handling), import what a run uses, wait for the environment to serve in, then serve;
    never returns. Until it is taken, the end of its ``driver`` process kills it, also
    while it imports (a driver may end at once: a usage error, ``--help``)."""
    import fcntl  # here: not on Windows, where no spare is forked

    from benchbox.sweep.lifeline import parent_death_signal

    code = 0
    try:
        # Sent when the forking *thread* ends: a spare is forked from the driver's only
        # thread, its main one, so when the driver ends.
        parent_death_signal(signal.SIGKILL)
        if os.getppid() != driver:  # it ended before the line above
            os._exit(0)
        for fd in own:
            os.close(fd)
        os.setsid()
        # Above 2 first: with a standard stream closed, a pipe may have taken its number.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in ends]
        for fd in ends:
            os.close(fd)
        for target, fd in enumerate(high):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # The imports in the driver's environment: a server's differs only in the thread
        # limits, which each child sets for itself (benchbox.sweep.worker).
        import benchbox.sweep.preload  # noqa: F401

        line = b""
        while not line.endswith(b"\n"):  # a byte at a time: the requests follow it
            byte = os.read(0, 1)
            if not byte:
                os._exit(0)
            line += byte
        os.environ.clear()
        os.environ.update(json.loads(line))
        # A server now: it ends once its standard input closes and its last child ended.
        parent_death_signal(0)
        serve()
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(code)
