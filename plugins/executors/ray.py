"""The ``ray`` executor: each run is a Ray task with the CPUs (and GPUs) it needs.

``address=""`` starts a local Ray instance for the sweep (``num_cpus`` limits it);
``address="auto"`` (``--ray-address auto``) or ``host:6379`` / ``ray://host:10001``
joins a running cluster, within ``connect_timeout`` seconds or not at all. Each task
runs its run in a worker process of its own (:mod:`benchbox.sweep.process`), forked
from a forkserver that the Ray worker keeps from task to task (``start="forkserver"``,
so only a Ray worker's first run pays the imports of torch and benchbox) or started
fresh (``start="process"``): a crash of one run never takes a Ray worker, or another
run, down with it. A run's process ends with the Ray worker that runs its task, and a
task is never retried by Ray (a lost task is a failed run, which ``--retry-failed``
runs again): a run is never recorded twice.

On a cluster of several nodes, every node needs benchbox and the plugins of the sweep
installed, the datasets at the same path, and the sweep's output folder (``--out``:
run folders and leaderboards) on storage that every node mounts at the same path (NFS
or similar); the driver sends absolute paths. The ledger is written by the driver alone.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchbox import ConfigError, Events, Job, Outcome, resolve_start, run_worker


class _NoThreadNote(logging.Filter):
    """Drops Ray's warning that ``ray.init`` set no SIGTERM handler because it was not
    called from the main thread: it is called from a helper thread on purpose (so that
    the wait for it can time out, and Ctrl-C ends it), and SIGTERM is the sweep
    driver's to handle. No setting of Ray's turns that one warning off alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('the ray executor needs Ray: pip install "benchbox[ray]"') from None
    return ray


def _task(job_json: str, start: str) -> dict[str, Any]:
    """Runs on a Ray worker: one run in a worker process, until it ends or the task is
    cancelled (``ray.cancel`` raises KeyboardInterrupt here, and :func:`run_worker`
    then stops the run's process before returning)."""
    outcome = run_worker(Job.from_json(job_json), threading.Event(), start=start)
    return outcome.__dict__


def _endpoint(address: str) -> tuple[str, int] | None:
    """The (host, port) to reach for ``address``, or None for ``auto``."""
    if address == "auto":
        return None
    rest, default = address, 6379
    if address.startswith("ray://"):
        rest, default = address[len("ray://") :], 10001
    if rest.startswith("["):  # [IPv6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if not host:
        raise ConfigError(f"ray executor: address {address!r} names no host")
    try:
        return host, int(port) if port else default
    except ValueError:
        raise ConfigError(f"ray executor: address {address!r} has no valid port") from None


class RayExecutor:
    """Runs each run as a Ray task requesting ``cpus_per_run`` CPUs and ``gpus_per_run``
    GPUs; Ray decides where and how many at once."""

    def __init__(
        self,
        address: str = "",
        num_cpus: int = 0,
        cpus_per_run: int = 1,
        gpus_per_run: float = 0.0,
        connect_timeout: float = 30.0,
        start: str = "",
    ) -> None:
        if cpus_per_run < 1:
            raise ConfigError(f"ray executor: cpus_per_run must be >= 1, got {cpus_per_run}")
        if gpus_per_run < 0 or num_cpus < 0:
            raise ConfigError("ray executor: num_cpus and gpus_per_run must be >= 0")
        if not connect_timeout > 0:
            raise ConfigError(f"ray executor: connect_timeout must be > 0, got {connect_timeout}")
        self.start = resolve_start(start, "ray executor")
        self.ray = _import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.connect_timeout = connect_timeout
        self.slots = 1

    def _init(self, stop: threading.Event) -> bool:
        """Start or join Ray; False if ``stop`` was set first.

        Raises:
            ConfigError: the cluster cannot be reached, or does not answer in time.
        """
        ray = self.ray
        if ray.is_initialized():
            return True
        # Ray's own notes (a local instance started, a cluster joined) stay out of the
        # sweep's live table; its warnings still show.
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        worker_log = logging.getLogger("ray._private.worker")  # where Ray logs that note
        if not any(isinstance(f, _NoThreadNote) for f in worker_log.filters):
            worker_log.addFilter(_NoThreadNote())
        where = self.address or "a local instance"
        if self.address:
            kwargs["address"] = self.address
            endpoint = _endpoint(self.address)
            if endpoint is not None:
                # ray.init retries an address nobody answers at for ever, deaf to Ctrl-C.
                try:
                    socket.create_connection(endpoint, timeout=self.connect_timeout).close()
                except OSError as exc:
                    reason = exc.strerror or type(exc).__name__
                    raise ConfigError(
                        f"ray executor: cannot reach a Ray cluster at {self.address} ({reason}); "
                        "start one there (ray start --head), or leave --ray-address out to "
                        "start a local Ray"
                    ) from None
        elif self.num_cpus:
            kwargs["num_cpus"] = self.num_cpus
        errors: list[BaseException] = []
        ready = threading.Event()

        def connect() -> None:
            try:
                ray.init(**kwargs)
            except BaseException as exc:  # handed to the waiting thread
                errors.append(exc)
                return
            finally:
                ready.set()
            # Ray ties the processes of a local instance to the thread that started them
            # (they die with it: PR_SET_PDEATHSIG), so this thread lives as long as Ray.
            while ray.is_initialized():
                time.sleep(1.0)

        # Waited for from here, so that a cluster that never answers, or a Ctrl-C, ends
        # the wait; a local instance may take long to start on a loaded machine.
        threading.Thread(target=connect, name="benchbox-ray-init", daemon=True).start()
        limit = self.connect_timeout if self.address else max(self.connect_timeout, 300.0)
        deadline = time.monotonic() + limit
        while not ready.wait(0.2):
            if stop.is_set():
                return False
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"ray executor: no answer from {where} within {limit:g} s; is a Ray "
                    "cluster running there? (--executor-opt connect_timeout=N waits longer)"
                )
        if errors:
            exc = errors[0]
            if isinstance(exc, ConnectionError | RuntimeError | ValueError):
                raise ConfigError(f"ray executor: cannot start or join {where}: {exc}") from None
            raise exc
        return True

    def run(self, jobs: Sequence[Job], events: Events, stop: threading.Event) -> None:
        ray = self.ray
        if not self._init(stop):
            return
        cpus = ray.cluster_resources().get("CPU", 1)
        self.slots = max(1, int(cpus // self.cpus_per_run))
        remote = ray.remote(
            num_cpus=self.cpus_per_run,
            num_gpus=self.gpus_per_run,
            # Never run a job twice: a lost task is a failed run (see the module docstring).
            max_retries=0,
        )(_task)
        pending: dict[Any, Job] = {}
        for job in jobs:
            job.threads = self.cpus_per_run
            job.gpus = self.gpus_per_run
            pending[remote.remote(job.to_json(), self.start)] = job
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
                events.ended(job, self._outcome(ref, job, cancelled))

    def _outcome(self, ref: Any, job: Job, cancelled: bool) -> Outcome:
        ray = self.ray
        try:
            return Outcome.from_dict(ray.get(ref))
        except ray.exceptions.TaskCancelledError as exc:
            return Outcome("interrupted", job.run_id, f"cancelled ({type(exc).__name__})")
        except ray.exceptions.WorkerCrashedError:
            error = (
                "the Ray worker running this run died (killed, or out of memory); its run "
                "process ended with it"
            )
            return Outcome("interrupted" if cancelled else "failed", job.run_id, error)
        except ray.exceptions.RayError as exc:
            status = "interrupted" if cancelled else "failed"
            first = (str(exc).strip().splitlines() or [""])[0]
            return Outcome(status, job.run_id, f"{type(exc).__name__}: {first}"[:300])
