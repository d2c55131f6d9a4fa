"""What the driver hands an executor (:class:`Job`) and what it hears back (:class:`Outcome`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["OWNER_ENV", "RESULT_PREFIX", "Job", "Outcome", "thread_vars"]

#: Marks the line of a ``process`` worker's standard output that holds its outcome.
RESULT_PREFIX = "benchbox-sweep-result: "
#: The environment variable telling a ``process`` worker its owner (``pid:identity``).
OWNER_ENV = "BENCHBOX_SWEEP_OWNER"


@dataclass
class Job:
    """One run of a sweep: its resolved config and how many CPU threads it may use.

    ``run_id`` is chosen by the driver (the run folder's name), so that the ledger names
    the run before it starts and a job run twice (a retried task) is refused, not run
    twice. ``config`` holds absolute paths: the job may run in another working folder.
    """

    index: int
    config_hash: str
    config: dict[str, Any]
    threads: int = 1
    gpus: float = 0.0
    log_path: str = ""
    run_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


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


def thread_vars(threads: int) -> dict[str, str]:
    """Environment variables limiting a process to ``threads`` CPU threads (OpenMP, MKL,
    BLAS), so that N workers on a machine do not oversubscribe its cores."""
    return dict.fromkeys(
        ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(threads)
    )
