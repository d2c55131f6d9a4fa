"""A sweep's worker ends when the process that started it ends.

A driver killed outright (``kill -9``, the out-of-memory killer) or a Ray worker killed
mid-task cannot stop its runs: left alone they would finish and append their rows, and
the next sweep would run them again. So a worker watches its owner (the process that
started it: the sweep's driver, or the Ray worker running the task) and, once the owner
is gone, sends itself SIGTERM, which a run handles like Ctrl-C (marked ``interrupted``,
no leaderboard row), then SIGKILL if it has not ended ``grace`` seconds later.

Two mechanisms, for the two halves of the job:

* Linux's ``PR_SET_PDEATHSIG`` (through ``prctl``): the kernel sends the signal the
  moment the worker's parent exits, without polling. Strictly, when the parent
  *thread* that started the worker ends: workers are started by a thread that waits
  for them (:func:`benchbox.sweep.process.run_worker`), or by a forkserver's only one;
* a daemon thread polling the owner every ``interval`` seconds, on every platform. It
  covers what the first cannot: an owner that is not the direct parent (a worker forked
  by a forkserver whose owner is the driver), and systems without ``prctl``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from benchbox.records.status import process_identity

__all__ = ["die_with", "owner", "owner_alive", "parent_death_signal"]

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1


def parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent exits.

    Returns:
        Whether it was set (False on other systems or when ``prctl`` is unavailable).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def owner_alive(pid: int, identity: str | None) -> bool:
    """Whether process ``pid`` still runs, and is the same process (``identity``, from
    :func:`benchbox.records.status.process_identity`, tells it from a later process that
    got the same pid; None skips that test)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user: not our owner
        return False
    return identity is None or process_identity(pid) == identity


def owner() -> tuple[int, str | None]:
    """This process as an owner: its pid and identity, for :func:`die_with`."""
    pid = os.getpid()
    return pid, process_identity(pid)


def die_with(pid: int, identity: str | None, interval: float = 1.0, grace: float = 30.0) -> None:
    """End this process when process ``pid`` ends (see the module docstring).

    An owner already gone ends this process at once (exit 143, as SIGTERM would): the
    run has not started and there is nothing to clean up.
    """
    parent_death_signal(signal.SIGTERM)
    if not owner_alive(pid, identity):
        os._exit(128 + signal.SIGTERM)

    def watch() -> None:
        while owner_alive(pid, identity):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="benchbox-lifeline", daemon=True).start()
