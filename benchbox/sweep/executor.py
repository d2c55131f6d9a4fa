"""What an executor is: the thing that runs a sweep's runs, each in its own process.

An executor plugin registers a factory with ``register_executors``; ``benchbox sweep
--executor NAME --executor-opt key=value`` builds it with those parameters. The sweep's
driver hands it every :class:`Job` at once and is told of each run's start and end
through :class:`Events`; it never blocks on one run. Executors must:

* run each job in a process of its own, as ``python -m benchbox.sweep.worker`` does
  (:func:`run_worker` runs one job that way and returns its :class:`Outcome`), so that a
  crash, a NaN or an out-of-memory kill of one run leaves the others running;
* return when every job has ended, or when ``stop`` is set (Ctrl-C), after telling the
  running jobs to stop (SIGINT, so that they mark their run folders ``interrupted``)
  and reporting them as ``interrupted``.
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class Job:
    """One run of a sweep: its resolved config and how many CPU threads it may use."""

    index: int
    config_hash: str
    config: dict[str, Any]
    threads: int = 1
    gpus: float = 0.0
    log_path: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class Outcome:
    """How one run ended: ``completed``, ``failed`` or ``interrupted``."""

    status: str
    run_id: str = ""
    error: str = ""
    wall_s: float = 0.0
    summary: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            status=str(data.get("status", "failed")),
            run_id=str(data.get("run_id", "")),
            error=str(data.get("error", "")),
            wall_s=float(data.get("wall_s", 0.0)),
            summary=dict(data.get("summary", {})),
        )


class Events(Protocol):
    """The driver's side: told when a job starts and how it ended (from any thread)."""

    def started(self, job: Job) -> None: ...

    def ended(self, job: Job, outcome: Outcome) -> None: ...


class Executor(Protocol):
    """Runs jobs; see the module docstring for the contract."""

    #: How many runs may run at once (shown to the user and used for the ETA).
    slots: int

    def run(self, jobs: Sequence[Job], events: Events, stop: threading.Event) -> None: ...


#: Marks the line of the worker's standard output that holds its outcome.
RESULT_PREFIX = "benchbox-sweep-result: "


def worker_command() -> list[str]:
    return [sys.executable, "-m", "benchbox.sweep.worker"]


def thread_env(threads: int) -> dict[str, str]:
    """Environment of a worker limited to ``threads`` CPU threads (torch, OpenMP, BLAS),
    so that N workers on a machine do not oversubscribe its cores."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_worker(job: Job, stop: threading.Event, poll: float = 0.2, grace: float = 30.0) -> Outcome:
    """Run one job in a fresh ``python -m benchbox.sweep.worker`` process and wait for it.

    When ``stop`` is set the worker gets SIGINT (as Ctrl-C would send it) and ``grace``
    seconds to mark its run interrupted, then SIGKILL. A worker that dies without an
    outcome (killed, segfault, out of memory) is reported as failed with its exit code.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        worker_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=thread_env(job.threads),
        text=True,
        # A session of its own: a Ctrl-C at the terminal reaches the driver only, which
        # then stops the workers itself and knows which ones it stopped.
        start_new_session=True,
    )
    reader = _OutputReader(proc)
    assert proc.stdin is not None
    try:
        proc.stdin.write(job.to_json())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    interrupted = False
    while proc.poll() is None:
        if stop.is_set() and not interrupted:
            interrupted = True
            _signal(proc, signal.SIGINT)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(poll)
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)
        time.sleep(poll)
    reader.join()
    wall = time.perf_counter() - t0
    outcome = reader.outcome
    if outcome is None:
        code = proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        status = "interrupted" if interrupted else "failed"
        tail = reader.tail()
        error = f"worker process ended without a result ({how})" + (f": {tail}" if tail else "")
        outcome = Outcome(status=status, error=error, wall_s=wall)
    elif interrupted and outcome.status != "completed":
        outcome.status = "interrupted"
    if not outcome.wall_s:
        outcome.wall_s = wall
    return outcome


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class _OutputReader(threading.Thread):
    """Drains the worker's output (so it never blocks on a full pipe), keeps its last
    lines for error messages and picks out the outcome line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.outcome: Outcome | None = None
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                try:
                    self.outcome = Outcome.from_dict(json.loads(line[len(RESULT_PREFIX) :]))
                except (ValueError, TypeError):
                    self.lines.append(line.rstrip())
                continue
            self.lines.append(line.rstrip())
            del self.lines[:-20]

    def tail(self) -> str:
        lines = [ln for ln in self.lines if ln.strip()]
        return lines[-1][:300] if lines else ""


def build_executor(name: str, options: dict[str, Any]) -> Executor:
    """The executor plugin ``name`` built with ``options`` (checked against its signature)."""
    from benchbox.hooks.manager import get_registry

    entry = get_registry().get("executor", name)
    entry.check_params(options)
    executor: Executor = entry.build(**options)
    return executor
