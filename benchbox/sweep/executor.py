"""What an executor is: the thing that runs a sweep's runs, each in its own process.

An executor plugin registers a factory with ``register_executors``; ``benchbox sweep
--executor NAME --executor-opt key=value`` builds it with those parameters. The sweep's
driver hands it every :class:`Job` at once and is told of each run's start and end
through :class:`Events`; it never blocks on one run. Executors must:

* run each job in a process of its own (:func:`run_worker` runs one job that way, see
  :mod:`benchbox.sweep.process`, and returns its :class:`Outcome`), so that a crash, a
  NaN or an out-of-memory kill of one run leaves the others running, and a worker
  never outlives the process that started it;
* run each job at most once: a job's ``run_id`` names its run folder, and a worker
  refuses a folder that exists, so a retried task cannot add a second row;
* return when every job has ended, or when ``stop`` is set (Ctrl-C), after telling the
  running jobs to stop (SIGINT, so that they mark their run folders ``interrupted``)
  and reporting them as ``interrupted``.

An executor may also have ``prepare()`` and ``close()``. ``benchbox sweep`` calls
``prepare()`` as soon as the executor is built, before it plans the runs, so that slow
set-up (the local executor's forkserver importing what a run uses) overlaps the
planning; and ``close()`` when the sweep ends, or fails before ``run``. ``run`` must
work without them. During ``prepare()`` a spare forkserver, forked from the driver
before it imported torch, waits to be taken with ``ForkServer(inherit=True)``
(:func:`prepared`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from benchbox.sweep.forkserver import ForkServer
from benchbox.sweep.job import Job, Outcome
from benchbox.sweep.process import (
    RESULT_PREFIX,
    STARTS,
    resolve_start,
    run_worker,
    thread_env,
    worker_command,
)
from benchbox.sweep.spare import discard_spare, fork_spare

__all__ = [
    "RESULT_PREFIX",
    "STARTS",
    "Events",
    "Executor",
    "ForkServer",
    "Job",
    "Outcome",
    "build_executor",
    "prepared",
    "resolve_start",
    "run_worker",
    "thread_env",
    "worker_command",
]


class Events(Protocol):
    """The driver's side: told when a job starts and how it ended (from any thread)."""

    def started(self, job: Job) -> None: ...

    def ended(self, job: Job, outcome: Outcome) -> None: ...


class Executor(Protocol):
    """Runs jobs; see the module docstring for the contract."""

    #: How many runs may run at once (shown to the user and used for the ETA).
    slots: int

    def run(self, jobs: Sequence[Job], events: Events, stop: threading.Event) -> None: ...


def build_executor(name: str, options: dict[str, Any]) -> Executor:
    """The executor plugin ``name`` built with ``options`` (checked against its signature)."""
    from benchbox.hooks.manager import get_registry

    entry = get_registry().get("executor", name)
    entry.check_params(options)
    executor: Executor = entry.build(**options)
    return executor


@contextlib.contextmanager
def prepared(name: str, options: dict[str, Any]) -> Iterator[Executor]:
    """The executor plugin ``name`` built with ``options`` (:func:`build_executor`), its
    optional ``prepare()`` called at once and ``close()`` on leaving (also when the sweep
    fails before its runs start).

    Before the plugins load (they import torch, and may run code), this process is forked
    into a spare forkserver (:func:`benchbox.sweep.spare.fork_spare`), which starts
    its imports beside the driver's; ``prepare()`` may take it, as the local executor
    does, and a spare not taken is ended.
    """
    fork_spare()
    try:
        executor = build_executor(name, options)
        prepare, close = getattr(executor, "prepare", None), getattr(executor, "close", None)
        try:
            if callable(prepare):
                prepare()
            discard_spare()
            yield executor
        finally:
            if callable(close):
                close()
    finally:
        discard_spare()
