"""The methods of a leaderboard, and their seeds, as ``benchbox compare`` pairs them.

A *method* is a group of leaderboard rows that agree on the ``by`` columns; a *replicate*
is one seed of a method: one run, or, for cross-validation, the runs of one seed over
its folds.

Cross-validation: when a method's runs carry a ``fold`` (``2/4``), the runs of one seed
over its folds together make one *replicate* that scored every case once (the folds'
test cases must not overlap, and each fold must appear once per seed); replicates, not
runs, are then averaged per case and counted as seeds.

:func:`group_methods` groups the rows and reads each replicate's per-case series;
:func:`case_matrix` checks that every replicate and every method scored the same cases
and returns the (methods, cases) matrix of seed-averaged scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.errors import ConfigError, DataError
from benchbox.records.leaderboard import SPEED_COLUMNS, headline_columns

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "SETUP_COLUMNS",
    "Method",
    "case_matrix",
    "default_metrics",
    "group",
    "group_methods",
    "label",
    "method_table",
    "with_method_keys",
]

#: Columns that, when they differ between the runs of one method, are worth a warning.
SETUP_COLUMNS = (
    "preset",
    "fusion_epochs",
    "epochs",
    "image_size",
    "loss",
    "fusion_loss",
    "postprocess",
    "tta",
    "distill",
    "amp",
)


def _order(value: Any) -> tuple[int, float, str]:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, str(value))


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def with_method_keys(board: Any, by: Sequence[str]) -> Any:
    """``board`` with its ``by`` columns as strings, an empty cell as ``none``."""
    return board.assign(**{c: [_show(v) if v == v else "none" for v in board[c]] for c in by})


def label(keys: dict[str, str]) -> str:
    return " / ".join(keys.values())


def _case_sets_differ(a: str, b: str, ca: set[str], cb: set[str]) -> str:
    only_a, only_b = sorted(ca - cb), sorted(cb - ca)
    parts = []
    if only_a:
        parts.append(f"{len(only_a)} case(s) only in {a}, e.g. {only_a[0]}")
    if only_b:
        parts.append(f"{len(only_b)} case(s) only in {b}, e.g. {only_b[0]}")
    return "; ".join(parts)


@dataclass
class Method:
    """One method of a leaderboard: the rows that agree on the ``by`` columns.

    Attributes:
        key: the ``by`` columns' values (as text, an empty cell as ``none``).
        replicates: the run ids of each replicate: one run, or, for cross-validation,
            the fold runs of one seed (see the module docstring).
    """

    key: dict[str, str]
    replicates: list[list[str]] = field(default_factory=list)

    @property
    def runs(self) -> list[str]:
        return [r for unit in self.replicates for r in unit]

    @property
    def label(self) -> str:
        return label(self.key)


def group(board: Any, by: Sequence[str], warnings: list[str]) -> list[Method]:
    """The methods of a leaderboard and their replicates, in the order they first appear:
    the one grouping behind ``benchbox leaderboard``, ``compare``, ``report`` and the
    sweep's summary. A run listed twice counts once (its last row). Setup columns that
    differ within a method are a warning."""
    keyed = with_method_keys(board, by).drop_duplicates("run_id", keep="last")
    methods = []
    for group_key, rows in keyed.groupby(list(by), sort=False):
        values = group_key if isinstance(group_key, tuple) else (group_key,)
        key = {c: str(v) for c, v in zip(by, values, strict=True)}
        for column in SETUP_COLUMNS:
            if column in rows and column not in by:
                seen = [_show(v) for v in sorted(set(rows[column].dropna()), key=_order)]
                if len(seen) > 1:
                    warnings.append(
                        f"{label(key)} mixes runs with {column} {', '.join(seen)}; "
                        f"add --by {','.join([*by, column])} to separate them"
                    )
        methods.append(Method(key, _replicates(rows, label(key), "fold" not in by)))
    return methods


def default_metrics(board: Any) -> list[str]:
    """The columns a method table shows unless told: the headline metrics
    (:func:`benchbox.records.leaderboard.headline_columns`), then the speed columns."""
    columns = list(board.columns)
    return headline_columns(columns) + [c for c in SPEED_COLUMNS if c in columns]


def method_table(
    board: Any,
    by: Sequence[str],
    metrics: Sequence[str] | None = None,
    warnings: list[str] | None = None,
) -> Any:
    """Each method's mean, sample std and count of replicates (seeds) of each metric.

    A replicate's value is its run's; for the fold runs of one seed, their mean weighted
    by each run's test cases (``n_cases``), i.e. the mean over every case it scored, as
    ``benchbox compare`` averages per case. Speed columns (:data:`SPEED_COLUMNS`) are
    averaged over the fold runs unweighted. ``metrics`` default to
    :func:`default_metrics`. Returns a DataFrame with the ``by`` columns, ``n``
    (replicates), ``runs`` and ``<metric>``, ``<metric>_std``.
    """
    import pandas as pd

    warnings = [] if warnings is None else warnings
    if metrics is None:  # a column that groups the methods is not also shown as a metric
        metrics = [m for m in default_metrics(board) if m not in by]
    metrics = list(metrics)
    missing = [c for c in by if c not in board.columns]
    if missing:
        raise ConfigError(f"leaderboard has no column {', '.join(map(repr, missing))}")
    unknown = [m for m in metrics if m not in board.columns]
    if unknown:
        raise ConfigError(f"leaderboard has no metric {', '.join(map(repr, unknown))}")
    both = [m for m in metrics if m in by]
    if both:
        raise ConfigError(
            f"{', '.join(map(repr, both))} groups the methods (--by), so it cannot also be"
            " a metric of the table (-m)"
        )
    rows = board.drop_duplicates("run_id", keep="last").set_index(
        board.drop_duplicates("run_id", keep="last")["run_id"].astype(str)
    )
    table = []
    for method in group(board, by, warnings):
        per_replicate: dict[str, list[float]] = {m: [] for m in metrics}
        for unit in method.replicates:
            runs = rows.loc[unit]
            cases = pd.to_numeric(runs["n_cases"], errors="coerce") if "n_cases" in runs else None
            for m in metrics:
                values = pd.to_numeric(runs[m], errors="coerce")
                weights = np.ones(len(values))
                if m not in SPEED_COLUMNS and cases is not None and cases.notna().all():
                    weights = cases.to_numpy(float)
                ok = values.notna().to_numpy()
                value = (
                    float(np.average(values.to_numpy(float)[ok], weights=weights[ok]))
                    if ok.any() and weights[ok].sum() > 0
                    else math.nan
                )
                per_replicate[m].append(value)
        out: dict[str, Any] = {**method.key, "n": len(method.replicates), "runs": len(method.runs)}
        for m in metrics:
            values = np.array([v for v in per_replicate[m] if math.isfinite(v)])
            out[m] = float(values.mean()) if len(values) else math.nan
            out[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        table.append(out)
    return pd.DataFrame(
        table, columns=[*by, "n", "runs", *[c for m in metrics for c in (m, f"{m}_std")]]
    )


def group_methods(
    board: Any, cases: Any, by: Sequence[str], metric: str, warnings: list[str]
) -> tuple[list[dict[str, str]], list[list[str]], list[list[str]], dict[str, Any]]:
    """Methods (key dicts), their run ids, their replicates, and each replicate's
    per-case series of ``metric`` (the methods of :func:`group` over the runs that have
    per-case results).

    A replicate is one run, or, for runs with a ``fold``, the fold runs of one seed
    (their series joined; see the module docstring). It is named by its run id, or by
    its run ids joined with ``+``.
    """
    import pandas as pd

    with_cases = set(cases["run_id"])
    lost = [r for r in board["run_id"].astype(str).drop_duplicates() if r not in with_cases]
    if lost:
        warnings.append(
            f"{len(lost)} run(s) have no per-case results and are left out (e.g. {lost[0]})"
        )
    methods = group(board[board["run_id"].astype(str).isin(with_cases)], by, warnings)
    if not methods:
        raise DataError("no run of the leaderboard has per-case results")
    keys = [m.key for m in methods]
    runs = [m.runs for m in methods]
    members = [m.replicates for m in methods]
    wanted = {r for ids in runs for r in ids}
    by_run = {
        str(run_id): frame.set_index("case_id")[metric]
        for run_id, frame in cases[cases["run_id"].isin(wanted)].groupby("run_id")
    }
    for r, s in by_run.items():
        if s.index.has_duplicates:
            raise DataError(f"run {r} lists a case more than once in its per-case results")
    without = [r for r, s in by_run.items() if pd.to_numeric(s, errors="coerce").isna().all()]
    if without:
        owner = {r: label(k) for k, ids in zip(keys, runs, strict=True) for r in ids}
        named = ", ".join(f"{r} ({owner[r]})" for r in without[:3])
        more = f" and {len(without) - 3} more" if len(without) > 3 else ""
        raise DataError(
            f"run{'s' if len(without) > 1 else ''} {named}{more} "
            f"{'have' if len(without) > 1 else 'has'} no {metric} value for any case; leave "
            f"{'them' if len(without) > 1 else 'it'} out with "
            + " ".join(f"--exclude {r}" for r in without[:3])
        )
    series: dict[str, Any] = {}
    replicates: list[list[str]] = []
    for key, units in zip(keys, members, strict=True):
        names = []
        for unit in units:
            joined = pd.concat([by_run[r] for r in unit]) if len(unit) > 1 else by_run[unit[0]]
            if joined.index.has_duplicates:
                case = joined.index[joined.index.duplicated()][0]
                raise DataError(
                    f"the fold runs {', '.join(unit)} of {label(key)} share test case "
                    f"{case}: cross-validation folds must not overlap"
                )
            name = "+".join(unit)
            series[name] = joined
            names.append(name)
        replicates.append(names)
    return keys, runs, replicates, series


def _replicates(group: Any, label: str, pool_folds: bool) -> list[list[str]]:
    """The run ids of each replicate of one method (see :func:`group_methods`)."""
    ids = list(group["run_id"].astype(str))
    folds = group.get("fold")
    if not pool_folds or folds is None or folds.isna().all():
        return [[r] for r in ids]
    if folds.isna().any():
        raise DataError(
            f"{label} mixes cross-validation runs (with a fold) and runs without one; "
            "add --by fold to compare them fold by fold"
        )
    seeds = group["seed"].astype(str) if "seed" in group else ["-"] * len(ids)
    units: dict[str, list[str]] = {}
    seen: dict[tuple[str, str], str] = {}
    for run_id, seed, fold in zip(ids, seeds, folds.astype(str), strict=True):
        if (seed, fold) in seen:
            raise DataError(
                f"{label}: runs {seen[seed, fold]} and {run_id} are both fold {fold} of seed "
                f"{seed}; remove one from the leaderboard"
            )
        seen[seed, fold] = run_id
        units.setdefault(seed, []).append(run_id)
    return list(units.values())


def case_matrix(
    keys: list[dict[str, str]],
    replicates: list[list[str]],
    series: dict[str, Any],
    metric: str,
    warnings: list[str],
) -> tuple[list[str], NDArray, list[list[float]]]:
    """The (methods, cases) matrix of seed-averaged scores and each replicate's mean."""
    import pandas as pd

    case_sets: list[set[str]] = []
    for key, ids in zip(keys, replicates, strict=True):
        sets = [set(series[r].index) for r in ids]
        for r, s in zip(ids[1:], sets[1:], strict=True):
            if s != sets[0]:
                diff = _case_sets_differ(ids[0], r, sets[0], s)
                raise DataError(
                    f"runs of {label(key)} were scored on different cases ({diff}), so "
                    "they cannot be averaged case by case"
                )
        case_sets.append(sets[0])
    for key, s in zip(keys[1:], case_sets[1:], strict=True):
        if s != case_sets[0]:
            diff = _case_sets_differ(label(keys[0]), label(key), case_sets[0], s)
            raise DataError(
                f"cannot pair {label(keys[0])} with {label(key)}: they were scored on "
                f"different cases ({diff})"
            )
    order = list(series[replicates[0][0]].index)
    per_run = {
        r: pd.to_numeric(series[r], errors="coerce").reindex(order)
        for ids in replicates
        for r in ids
    }
    table = pd.DataFrame(per_run)
    usable = table.notna().all(axis=1) & np.isfinite(table).all(axis=1)
    if not usable.all():
        dropped = [c for c, ok in usable.items() if not ok]
        warnings.append(
            f"{len(dropped)} case(s) without a finite {metric} in some run are left out of "
            f"every method (e.g. {dropped[0]})"
        )
    table = table[usable]
    if table.empty:
        raise DataError(f"no case has a {metric} value in every run")
    values = np.stack([table[ids].to_numpy(np.float64).mean(axis=1) for ids in replicates])
    seed_means = [[float(table[r].mean()) for r in ids] for ids in replicates]
    return [str(c) for c in table.index], values, seed_means
