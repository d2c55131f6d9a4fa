"""The ``ray`` executor: each run is a Ray task with the CPUs (and GPUs) it needs.

``address=""`` starts a local Ray instance for the sweep (``num_cpus`` limits it);
``address="auto"`` (``--ray-address auto``) or ``ray://host:10001`` joins a running
cluster. Each task starts ``python -m benchbox.sweep.worker`` on its node, so a crash
of one run never takes a Ray worker, or another run, down with it.

On a cluster of several nodes, every node needs benchbox and the plugins of the sweep
installed, the datasets at the same path, and the sweep's output folder (``--out``:
run folders and leaderboards) on storage that every node mounts at the same path (NFS
or similar). The ledger is written by the driver alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from benchbox import ConfigError, Events, Job, Outcome, run_worker


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('the ray executor needs Ray: pip install "benchbox[ray]"') from None
    return ray


def _task(job_json: str) -> dict[str, Any]:
    """Runs on a Ray worker: one benchbox worker process, until it ends or is cancelled."""
    import json

    job = Job(**json.loads(job_json))
    stop = threading.Event()
    try:
        outcome = run_worker(job, stop)
    except KeyboardInterrupt:  # ray.cancel() raises this in the task
        stop.set()
        outcome = Outcome("interrupted", error="cancelled")
    return outcome.__dict__


class RayExecutor:
    """Runs each run as a Ray task requesting ``cpus_per_run`` CPUs and ``gpus_per_run``
    GPUs; Ray decides where and how many at once."""

    def __init__(
        self,
        address: str = "",
        num_cpus: int = 0,
        cpus_per_run: int = 1,
        gpus_per_run: float = 0.0,
    ) -> None:
        if cpus_per_run < 1:
            raise ConfigError(f"ray executor: cpus_per_run must be >= 1, got {cpus_per_run}")
        if gpus_per_run < 0 or num_cpus < 0:
            raise ConfigError("ray executor: num_cpus and gpus_per_run must be >= 0")
        self.ray = _import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.slots = 1

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        elif self.num_cpus:
            kwargs["num_cpus"] = self.num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise ConfigError(f"ray executor: cannot start or join {where}: {exc}") from None

    def run(self, jobs: Sequence[Job], events: Events, stop: threading.Event) -> None:
        ray = self.ray
        self._init()
        cpus = ray.cluster_resources().get("CPU", 1)
        self.slots = max(1, int(cpus // self.cpus_per_run))
        remote = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run)(_task)
        pending: dict[Any, Job] = {}
        for job in jobs:
            job.threads = self.cpus_per_run
            job.gpus = self.gpus_per_run
            pending[remote.remote(job.to_json())] = job
            # Ray queues the tasks; a run counts as started when submitted (Ray does not
            # say when a task leaves its queue without a round trip per task).
            events.started(job)
        cancelled = False
        while pending:
            if stop.is_set() and not cancelled:
                cancelled = True
                for ref in pending:
                    ray.cancel(ref)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcome = Outcome.from_dict(ray.get(ref))
                except (ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError) as exc:
                    status = "interrupted" if cancelled else "failed"
                    outcome = Outcome(status, error=f"{type(exc).__name__}: {exc}"[:300])
                except ray.exceptions.RayError as exc:
                    outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}"[:300])
                events.ended(job, outcome)
