"""A grid of ``benchbox bench`` combinations, each measured in its own subprocess.

As timm's bulk runner does, every combination runs in a fresh Python process
(``python -m benchbox.bench.grid '<spec as JSON>'``), so one model's allocations,
compiled kernels or a crash never colour the next. The child prints its row as one
line ``--result <JSON>`` (or ``--error <message>`` for a user error) and writes
nothing; the parent appends the rows to the throughput leaderboard, one per finished
combination. A failing or timed-out combination is reported and the others still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbox import errors
from benchbox.bench.measure import BenchSpec

__all__ = [
    "ERROR",
    "RESULT",
    "Outcome",
    "check_names",
    "combinations",
    "run_grid",
    "run_one",
    "save_row",
    "throughput_path",
]

RESULT = "--result "
ERROR = "--error "


@dataclass
class Outcome:
    """What became of one combination: its row, or why there is none."""

    spec: BenchSpec
    row: dict[str, Any] | None = None
    error: str | None = None
    leaderboard: Path | None = None


def throughput_path(out: str | Path, device_type: str) -> Path:
    """``<out>/leaderboards/throughput-<device type>.csv``."""
    return Path(out) / "leaderboards" / f"throughput-{device_type}.csv"


def save_row(row: dict[str, Any], out: str | Path) -> Path:
    """Append ``row`` to its device's throughput leaderboard."""
    from benchbox.records import leaderboard

    return leaderboard.append_row(
        throughput_path(out, row["device_type"]),
        row,
        leading=leaderboard.THROUGHPUT_LEADING,
        trailing=leaderboard.THROUGHPUT_TRAILING,
    )


def combinations(
    fusions: Sequence[str], segmenters: Sequence[str], base: BenchSpec
) -> list[BenchSpec]:
    """Every ``fusion x segmenter`` pair with the settings of ``base``."""
    from dataclasses import replace

    return [
        BenchSpec(replace(base.config, fusion=f, seg=s), base.settings)
        for f in fusions
        for s in segmenters
        if f != "none" or s != "none"
    ]


def check_names(specs: Sequence[BenchSpec], registry: Any = None) -> None:
    """Fail before any subprocess starts on a bad setting, name or option of any pair:
    the pre-flight check of ``benchbox run`` (:func:`benchbox.engine.models.check`),
    naming the pair."""
    from benchbox.engine.models import check
    from benchbox.hooks.manager import get_registry

    registry = registry or get_registry()
    for spec in specs:
        try:
            spec.validate()
            check(spec.config, registry)
        except errors.BenchboxError as exc:
            raise type(exc)(f"{spec.label}: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_one(spec: BenchSpec, timeout: float | None = None) -> Outcome:
    """Measure ``spec`` in a fresh subprocess and parse its row."""
    command = [sys.executable, "-m", "benchbox.bench.grid", json.dumps(spec.to_dict())]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return Outcome(spec, error=f"timed out after {timeout:g} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT):
            return Outcome(spec, row=json.loads(line[len(RESULT) :]))
        if line.startswith(ERROR):
            return Outcome(spec, error=line[len(ERROR) :])
    reason = _last_line(done.stderr) or f"exit code {done.returncode}, no result"
    return Outcome(spec, error=reason)


def run_grid(
    specs: Sequence[BenchSpec],
    out: str | Path,
    timeout: float | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Measure every spec in its own subprocess; append each finished row to the
    throughput leaderboard as soon as it is in."""
    outcomes = []
    for spec in specs:
        outcome = run_one(spec, timeout)
        if outcome.row is not None:
            outcome.leaderboard = save_row(outcome.row, out)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def _child(argv: Sequence[str]) -> int:
    from benchbox.bench.measure import bench

    try:
        spec = BenchSpec.from_dict(json.loads(argv[0]))
        row = bench(spec)
    except errors.BenchboxError as exc:
        print(ERROR + " ".join(str(exc).split()), flush=True)
        return 2
    print(RESULT + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    sys.exit(_child(sys.argv[1:]))
