"""SIGTERM handled like Ctrl-C.

Job schedulers (Slurm, Kubernetes), ``docker stop``, ``timeout`` and ``kill`` end a
process with ``SIGTERM``, whose default action kills Python on the spot: no ``finally``
block runs, so a run would stay ``running`` forever. Inside :func:`sigterm_as_interrupt`
a ``SIGTERM`` instead raises :class:`Terminated`, a ``KeyboardInterrupt``, so every
clean-up written for Ctrl-C (the run marked ``interrupted``, temporary files removed, no
leaderboard row) also runs for it.

Exit codes of the ``benchbox`` command: 130 after Ctrl-C (``SIGINT``), 143 after
``SIGTERM`` (128 + the signal number, as shells report a process the signal ended).

The reason recorded names the signal: ``terminated by SIGTERM``; "Ctrl-C" only when the
process is in the foreground of a terminal, where a SIGINT comes from the keyboard.
Elsewhere (a sweep's worker, a background job) a SIGINT was sent by another process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Received", "Terminated", "describe", "exit_code", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives ``signum`` (SIGTERM)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        # Also raised for a signal another handler caught first (torch's launcher turns
        # it into its own exception, re-raised as this): the block's caller, which may
        # only see the exit code a framework made of it, learns the signal all the same.
        if _active is not None and _active[0] == os.getpid() and _active[1].signum is None:
            _active[1].signum = signum


def describe(exc: BaseException) -> str:
    """How a ``KeyboardInterrupt`` came about, for the status file and messages."""
    if isinstance(exc, Terminated):
        return f"terminated by {signal.Signals(exc.signum).name}"
    if _in_terminal_foreground():
        return "interrupted by the user (Ctrl-C)"
    return "interrupted by SIGINT from another process (e.g. a sweep stopping its runs)"


def _in_terminal_foreground() -> bool:
    """Whether this process is in the foreground of a terminal (a Ctrl-C there is the
    only SIGINT a program did not send)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


def exit_code(exc: BaseException) -> int:
    """The exit code for an interrupt: 128 + the signal number (130 for Ctrl-C)."""
    signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    return 128 + int(signum)


class Received:
    """What :func:`sigterm_as_interrupt` saw: the signal number, or None."""

    signum: int | None = None


_active: tuple[int, Received] | None = None  # (pid, what it received) of the outermost block


@contextmanager
def sigterm_as_interrupt() -> Iterator[Received]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    Only the first SIGTERM raises; further ones are ignored until the block ends, so the
    clean-up after the first is not cut short (``SIGKILL`` still ends the process). A
    forked child (a DataLoader worker) that inherits the handler gets the default action.
    The previous handler is restored on exit; a nested block shares the outer one's
    handler. Outside the main thread this does nothing, since Python only lets the main
    thread set signal handlers.

    Yields:
        A :class:`Received` whose ``signum`` is set once a SIGTERM arrived, for callers
        whose framework turns the exception into an exit code (Typer makes any
        ``KeyboardInterrupt`` exit 130).
    """
    global _active
    if _active is not None and _active[0] == os.getpid():
        yield _active[1]  # nested (the CLI around a run): the outer handler serves
        return
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if received.signum is not None:
            return
        received.signum = signum
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    _active = (owner, received)
    try:
        yield received
    finally:
        _active = None
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
