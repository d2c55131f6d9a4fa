"""The ``local`` executor: up to ``jobs`` worker processes at once on this machine."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from benchbox import ConfigError, Events, ForkServer, Job, resolve_start, run_worker


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, as a container or taskset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs each run in its own process, ``jobs`` at a time, on this machine.

    Each worker gets ``threads`` torch/OpenMP threads, by default the cores divided by
    ``jobs``, so that the workers together use every core without oversubscribing it.
    ``start`` is how a worker process starts (:mod:`benchbox.sweep.process`):
    ``forkserver`` (default) forks it from a process that imported torch and benchbox
    once; ``process`` starts a fresh Python per run.
    """

    def __init__(self, jobs: int = 1, threads: int = 0, start: str = "") -> None:
        if jobs < 1:
            raise ConfigError(f"local executor: jobs must be >= 1, got {jobs}")
        if threads < 0:
            raise ConfigError(f"local executor: threads must be >= 0, got {threads}")
        self.slots = jobs
        self.threads = threads or max(1, cpu_count() // jobs)
        self.start = resolve_start(start, "local executor")
        self._server: ForkServer | None = None

    def prepare(self) -> None:
        """Start the forkserver now, so that its imports overlap the sweep's planning
        (a few seconds on a small machine); :meth:`run` uses it and :meth:`close` ends it."""
        if self.start == "forkserver" and self._server is None:
            # The spare forked from the driver with torch imported, if there is one.
            self._server = ForkServer(dict(os.environ), self.threads, inherit=True)

    def close(self) -> None:
        """End a forkserver started by :meth:`prepare` (once its children have ended)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def run(self, jobs: Sequence[Job], events: Events, stop: threading.Event) -> None:
        # The workers run in the driver's environment and folder as they are now (a
        # forkserver keeps those of its own start otherwise).
        env, cwd = dict(os.environ), os.getcwd()
        with contextlib.ExitStack() as stack:
            # One forkserver for the sweep, ended with it, with the workers' thread limits.
            server = None
            if self.start == "forkserver":
                if self._server is None or not self._server.alive:
                    self.close()
                    self._server = ForkServer(env, self.threads)
                server = self._server
                stack.callback(self.close)

            # Threads only wait on worker processes here; the work is in the processes.
            def one(job: Job) -> None:
                if stop.is_set():
                    return
                job.threads = self.threads
                events.started(job)
                outcome = run_worker(job, stop, start=self.start, env=env, cwd=cwd, server=server)
                events.ended(job, outcome)

            with ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="sweep") as pool:
                for future in [pool.submit(one, job) for job in jobs]:
                    future.result()
