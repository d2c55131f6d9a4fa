"""Collect what a report shows from leaderboards: comparisons per metric, the quality-vs-
cost points, example figures of the runs (when their folders are around) and provenance.

Rendering lives in :mod:`benchbox.report.html` and :mod:`benchbox.report.markdown`.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox.analysis import stats
from benchbox.analysis.compare import Comparison, compare
from benchbox.analysis.methods import method_table, with_method_keys
from benchbox.errors import BenchboxError, DataError

__all__ = ["DEFAULT_TOP", "Report", "Section", "build_report", "build_section"]

#: A report compares, by default, the metrics registered with a headline place up to
#: this one (``register_metrics``): SSIM, Qabf, VIF; Dice, HD95, NSD for the built-ins.
DEFAULT_TOP = 3
#: Leaderboard columns reconstructed into the ``benchbox run`` command of a method.
_COMMAND = (
    ("dataset", "--dataset"),
    ("fusion", "--fusion"),
    ("segmenter", "--seg"),
    ("loss", "--loss"),
    ("fusion_loss", "--fusion-loss"),
    ("preset", "--preset"),
    ("fusion_epochs", "--fusion-epochs"),
    ("epochs", "--epochs"),
    ("image_size", "--image-size"),
)


@dataclass
class Section:
    """One leaderboard's part of the report."""

    path: str
    dataset: str
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None
    cost: dict[str, Any] | None = None
    examples: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    commands: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Report:
    """Everything a report page shows."""

    title: str
    sections: list[Section]
    generated: str
    command: str
    resamples: int
    seed: int
    versions: dict[str, str]


def _metrics(columns: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    from benchbox.records.leaderboard import headline_columns

    if not wanted:
        return headline_columns(columns, top=DEFAULT_TOP)
    patterns = list(wanted)
    out: list[str] = []
    for pattern in patterns:
        out += [c for c in columns if fnmatch.fnmatchcase(c, pattern) and c not in out]
    return out


def _fmt_ci(c: Comparison, i: int) -> str:
    from benchbox.report.tables import number

    return f"{number(c.mean[i])} [{number(c.ci[i, 0], 3)}, {number(c.ci[i, 1], 3)}]"


def _leaderboard_table(
    comparisons: list[Comparison], board: Any, by: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Methods in the first metric's rank order; each metric as mean [95 % CI]."""
    from benchbox.report.tables import number

    first = comparisons[0]
    header = ["method", "seeds"]
    header += [f"{c.metric} {'↑' if c.higher_is_better else '↓'}" for c in comparisons]
    header += ["infer img/s", "parameters"]
    rows = []
    for i, method in enumerate(first.methods):
        row = [method, str(first.seeds[i])]
        for c in comparisons:
            j = c.methods.index(method) if method in c.methods else None
            row.append(_fmt_ci(c, j) if j is not None else "-")
        runs = board[board["run_id"].astype(str).isin(first.runs[i])]
        speed, params = _cost(runs)
        row += [number(speed, 3), _count(params)]
        rows.append(row)
    return header, rows


def _seed_table(
    board: Any, by: Sequence[str], wanted: Sequence[str] | None
) -> tuple[list[str], list[list[str]]] | None:
    """Without per-case results: the leaderboard's per-run means, mean ± sd over seeds."""
    from benchbox.records import leaderboard as lb
    from benchbox.report.tables import method_rows

    metrics = _metrics([c for c in board.columns if not c.endswith("_std")], wanted)
    metrics = [m for m in metrics if m not in lb.LEADING and m not in lb.TRAILING]
    if not metrics or not all(c in board for c in by):
        return None
    table = method_table(board, list(by), metrics, [])
    header, rows = method_rows(table, list(by))
    header = ["method", "seeds", *(f"{m} (mean ± sd over seeds)" for m in metrics)]
    rows = [[" / ".join(r[: len(by)]), r[len(by)], *r[len(by) + 2 :]] for r in rows]
    return header, rows


def _count(n: float | None) -> str:
    if n is None or not math.isfinite(n):
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def _cost(runs: Any) -> tuple[float | None, float | None]:
    import pandas as pd

    def mean(column: str) -> float | None:
        if column not in runs:
            return None
        values = pd.to_numeric(runs[column], errors="coerce").dropna()
        return float(values.mean()) if len(values) else None

    params = [v for v in (mean("fusion_params"), mean("seg_params")) if v is not None]
    return mean("infer_img_s"), (sum(params) if params else None)


def _examples(
    path: Path, board: Any, first: Comparison, runs_dirs: Sequence[Path]
) -> dict[str, tuple[str, bytes]]:
    """Each method's ``examples.png`` from the first of its runs whose folder is found."""
    folders = [path.resolve().parent.parent / "runs", *runs_dirs]
    out: dict[str, tuple[str, bytes]] = {}
    for method, run_ids in zip(first.methods, first.runs, strict=True):
        for run_id in sorted(run_ids):
            found = [f / run_id / "examples.png" for f in folders]
            hit = next((p for p in found if p.is_file()), None)
            if hit is not None:
                out[method] = (run_id, hit.read_bytes())
                break
    return out


def _provenance(board: Any) -> dict[str, Any]:
    def values(column: str) -> list[str]:
        if column not in board:
            return []
        return sorted({str(v) for v in board[column].dropna()})

    return {
        "runs": len(board),
        "benchbox": values("benchbox_version"),
        "torch": values("torch_version"),
        "python": values("python_version"),
        "plugins": values("plugin_versions"),
        "devices": values("device"),
        "amp": values("amp"),
        "config hashes": values("config_hash"),
        "times": [min(values("time")), max(values("time"))] if values("time") else [],
    }


def _commands(board: Any, by: Sequence[str]) -> list[tuple[str, str]]:
    """Per method, the ``benchbox run`` command its leaderboard columns describe."""
    out = []
    keyed = with_method_keys(board, by)
    for key, group in keyed.groupby(list(by), sort=False):
        first = group.iloc[0]
        words = ["benchbox run"]
        for column, flag in _COMMAND:
            value = first.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
                continue
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            words.append(f"{flag} {value}")
        seeds = sorted({int(s) for s in group["seed"].dropna()}) if "seed" in group else []
        if seeds:
            listed = ",".join(map(str, seeds))
            words.append(f"--seed {listed}" if len(seeds) == 1 else f"--seed {{{listed}}}")
        label = " / ".join(key if isinstance(key, tuple) else (key,))
        out.append((label, " ".join(words)))
    return out


def build_section(
    path: str | Path,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("fusion", "segmenter"),
    runs_dirs: Sequence[str | Path] = (),
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Section:
    """Compare the methods of one leaderboard on every report metric it has."""
    from benchbox.records import leaderboard as lb

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such leaderboard file")
    board = lb.read(path)
    dataset = str(board["dataset"].iloc[0]) if "dataset" in board and len(board) else path.stem
    section = Section(str(path), dataset)
    if board.empty:
        section.notes.append(f"{path}: the leaderboard has no rows")
        return section
    section.provenance = _provenance(board)
    section.commands = _commands(board, by) if all(c in board for c in by) else []
    try:
        columns = [c for c in lb.read_cases(path).columns if c not in lb.CASE_KEYS]
    except BenchboxError as exc:
        section.notes.append(f"{exc}; below, the leaderboard's own means ± sd over seeds only")
        section.table = _seed_table(board, by, metrics)
        return section
    chosen = _metrics(columns, metrics)
    for pattern in metrics or ():
        if not any(fnmatch.fnmatchcase(c, pattern) for c in columns):
            section.notes.append(f"no per-case column matches {pattern!r}")
    if not chosen:
        wanted = ", ".join(metrics) if metrics else f"headline metrics (top {DEFAULT_TOP})"
        section.notes.append(f"none of the metrics {wanted}")
        return section
    for metric in chosen:
        try:
            section.comparisons.append(compare(path, metric, by=by, resamples=resamples, seed=seed))
        except BenchboxError as exc:
            section.notes.append(f"{metric}: {exc}")
    if not section.comparisons:
        return section
    first = section.comparisons[0]
    for warning in first.warnings:
        if warning not in section.notes:
            section.notes.append(warning)
    section.table = _leaderboard_table(section.comparisons, board, by)
    points = []
    from benchbox.report.figures import CostPoint

    for i, method in enumerate(first.methods):
        runs = board[board["run_id"].astype(str).isin(first.runs[i])]
        speed, params = _cost(runs)
        low, high = (float(v) for v in first.ci[i])
        points.append(CostPoint(method, float(first.mean[i]), low, high, speed, params))
    section.cost = {"points": points, "metric": first.metric, "higher": first.higher_is_better}
    section.examples = _examples(path, board, first, [Path(p) for p in runs_dirs])
    return section


def build_report(
    paths: Sequence[str | Path],
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("fusion", "segmenter"),
    runs_dirs: Sequence[str | Path] = (),
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    command: str = "",
    title: str = "benchbox report",
) -> Report:
    """A report over one or more leaderboards (one section each).

    Raises:
        DataError: no leaderboard has anything to show (no rows, no metric), so the
            page would be empty; the message gives each one's reason.
    """
    import importlib.metadata as md

    # A shell glob such as leaderboards/*.csv also matches the per-case companions
    # (<dataset>.cases.csv); they belong to their leaderboard, never a section of their own.
    paths = [p for p in paths if not Path(p).name.endswith(".cases.csv")]
    if not paths:
        raise DataError("no leaderboard given (only per-case .cases.csv files)")
    sections = [build_section(p, metrics, by, runs_dirs, resamples, seed) for p in paths]
    if not any(s.comparisons or s.table for s in sections):
        reasons = [
            note if note.startswith(s.path) else f"{s.path}: {note}"
            for s in sections
            for note in (s.notes[0] if s.notes else "nothing to show",)
        ]
        raise DataError(f"nothing to report, no page written: {'; '.join(reasons)}")
    versions = {}
    for dist in ("benchbox", "numpy", "scipy", "pandas", "matplotlib"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return Report(
        title=title,
        sections=sections,
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command=command,
        resamples=resamples,
        seed=seed,
        versions=versions,
    )
