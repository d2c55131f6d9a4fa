"""Compare the methods of a leaderboard case by case: paired tests, bootstrap intervals,
rankings and their stability, from a leaderboard and its per-case companion file.

A *method* is a group of leaderboard rows that agree on the ``by`` columns (fusion and
segmenter by default); its rows are usually seeds. Within a method the per-case scores
are averaged over its runs, so each method has one score per case; the seed-to-seed
spread of the per-run means is reported beside it. All methods must have been scored on
the same cases of one dataset: anything else cannot be paired and is refused.

A case is what a run's ``data_seed`` and ``case_id`` name together: the synthetic dataset
draws its images, and datasets draw their splits, from the data seed, so ``test-00000``
of data seed 0 and of data seed 5 are different images. Methods are therefore paired
only when every run compared has the same data seed; ``data_seed=`` keeps the runs of
one. Rows written before the leaderboard had a ``data_seed`` column have it empty: they
are paired with each other by case id alone, as before, but never with runs whose data
seed is recorded (fill in their cell, or leave them out with ``exclude``). The reference
leaderboards in ``leaderboards/reference`` were all made with data seed 0.

Grouping rows into methods and seeds (cross-validation folds included) is
:mod:`benchbox.analysis.methods`.

The statistics are those of :mod:`benchbox.analysis.stats`; their choices (zero differences,
ties, intervals, ranks) are documented there and in ``docs/statistics.md``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.analysis import stats
from benchbox.analysis.methods import case_matrix, group_methods, label
from benchbox.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from benchbox.hooks.registry import Registry

__all__ = ["MIN_SEEDS", "Comparison", "compare", "metric_direction"]

#: Fewer seeds than this and the seed-to-seed spread is flagged as unreliable.
MIN_SEEDS = 3


@dataclass
class Comparison:
    """Everything ``benchbox compare`` reports for one metric of one leaderboard.

    Methods are listed in rank order (aggregate-then-rank on the mean, ties in order of
    appearance). ``values[i, j]`` is method ``i``'s score on ``cases[j]``, averaged over
    its runs.
    """

    leaderboard: str
    dataset: str
    metric: str
    higher_is_better: bool
    by: list[str]
    methods: list[str]
    keys: list[dict[str, str]]
    cases: list[str]
    values: NDArray
    runs: list[list[str]]
    replicates: list[list[str]]  # per method: its seeds (a run, or a seed's fold runs)
    seed_means: list[list[float]]
    mean: NDArray
    ci: NDArray  # (k, 2)
    rank: NDArray
    stability: stats.RankStability
    wins: NDArray  # (k, k) bool
    significance_share: NDArray
    significance_rank: NDArray
    pairs: list[dict[str, Any]]
    reference: str | None
    resamples: int
    seed: int
    alpha: float
    warnings: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [len(r) for r in self.replicates]

    @property
    def seed_sd(self) -> list[float | None]:
        return [float(np.std(m, ddof=1)) if len(m) > 1 else None for m in self.seed_means]

    def method_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per method, in rank order."""
        out = []
        for i, name in enumerate(self.methods):
            st = self.stability
            out.append(
                {
                    "method": name,
                    **self.keys[i],
                    "rank": int(self.rank[i]),
                    "mean": float(self.mean[i]),
                    "ci_low": float(self.ci[i, 0]),
                    "ci_high": float(self.ci[i, 1]),
                    "seeds": self.seeds[i],
                    "seed_sd": self.seed_sd[i],
                    "median_rank": int(st.median[i]),
                    "rank_low": int(st.low[i]),
                    "rank_high": int(st.high[i]),
                    "significant_wins": float(self.significance_share[i]),
                    "significance_rank": int(self.significance_rank[i]),
                    "runs": list(self.runs[i]),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The whole comparison as JSON-ready data."""
        return {
            "leaderboard": self.leaderboard,
            "dataset": self.dataset,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "by": self.by,
            "n_cases": len(self.cases),
            "resamples": self.resamples,
            "seed": self.seed,
            "alpha": self.alpha,
            "reference": self.reference,
            "methods": self.method_records(),
            "rank_frequency": {
                m: [float(f) for f in self.stability.frequency[i]]
                for i, m in enumerate(self.methods)
            },
            "pairs": self.pairs,
            "warnings": self.warnings,
        }


def metric_direction(column: str, registry: Registry | None = None) -> bool:
    """Whether higher is better for a per-case column, from the metric registry.

    The column is matched to the registered metric whose name is its longest prefix
    (``hd95_lesion`` -> ``hd95``, ``ssim_mean`` -> ``ssim``).

    Raises:
        ConfigError: no registered metric matches the column.
    """
    if registry is None:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
    names = sorted(
        (e.name for e in registry.list("metric")),
        key=len,
        reverse=True,
    )
    for name in names:
        if column == name or column.startswith(name + "_"):
            return bool(registry.get("metric", name).info["higher_is_better"])
    raise ConfigError(
        f"column {column!r} is not a registered metric, so its direction is unknown; "
        "pass --higher-is-better or --lower-is-better"
    )


def _read(path: str | Path, by: Sequence[str]) -> tuple[Any, Any, str]:
    from benchbox.records import leaderboard as lb

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such leaderboard file")
    board = lb.read(path)
    if board.empty:
        raise DataError(f"{path}: the leaderboard has no rows")
    missing = [c for c in ("run_id", *by) if c not in board.columns]
    if missing:
        hint = ""
        if path.name.endswith(".cases.csv"):
            board_path = path.with_name(path.name[: -len(".cases.csv")] + ".csv")
            hint = f"; it is a per-case file: compare its leaderboard, {board_path}"
        raise ConfigError(f"{path} has no column {', '.join(map(repr, missing))}{hint}")
    datasets = sorted(board["dataset"].dropna().astype(str).unique()) if "dataset" in board else []
    if len(datasets) > 1:
        raise DataError(
            f"{path} mixes datasets {', '.join(datasets)}; methods scored on different "
            "datasets cannot be paired"
        )
    cases = lb.read_cases(path)
    return board, cases, datasets[0] if datasets else path.stem


def _read_all(paths: Sequence[str | Path], by: Sequence[str]) -> tuple[Any, Any, str]:
    """One or several leaderboards of one dataset as one (rows and per-case rows)."""
    import pandas as pd

    if not paths:
        raise ConfigError("no leaderboard to compare")
    read = [(Path(p), *_read(p, by)) for p in paths]
    datasets = sorted({dataset for _, _, _, dataset in read})
    if len(datasets) > 1:
        raise DataError(
            "the leaderboards are of different datasets ("
            + ", ".join(f"{p}: {d}" for p, _, _, d in read)
            + "); methods scored on different datasets cannot be paired"
        )
    seen: dict[str, Path] = {}
    for path, board, _, _ in read:
        for run_id in board["run_id"].astype(str):
            if run_id in seen:
                raise DataError(
                    f"run {run_id} is in both {seen[run_id]} and {path}; give each run once"
                )
            seen[run_id] = path
    boards = pd.concat([board for _, board, _, _ in read], ignore_index=True)
    cases = pd.concat([c for _, _, c, _ in read], ignore_index=True)
    return boards, cases, datasets[0]


def _exclude(board: Any, cases: Any, exclude: Sequence[str]) -> tuple[Any, Any]:
    """The leaderboard and per-case rows without the runs ``exclude`` names."""
    known = list(board["run_id"].astype(str))
    for run_id in exclude:
        if run_id not in known:
            close = difflib.get_close_matches(run_id, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"--exclude {run_id}: no such run in the leaderboard{hint}")
    if set(known) <= set(exclude):
        raise DataError("--exclude leaves no run to compare")
    return (
        board[~board["run_id"].astype(str).isin(exclude)],
        cases[~cases["run_id"].astype(str).isin(exclude)],
    )


def _data_seeds(board: Any) -> list[str]:
    """Each row's data seed as text (``0``), or ``""`` where it was not recorded."""
    if "data_seed" not in board:
        return [""] * len(board)
    return [_integer(v) for v in board["data_seed"]]


def _integer(value: Any) -> str:
    if value != value or value is None or str(value).strip() == "":  # NaN or empty
        return ""
    try:
        return str(int(float(value)))
    except ValueError:
        return str(value)


def _one_data_seed(board: Any, cases: Any, by: Sequence[str], data_seed: int | None) -> Any:
    """The rows to compare, all of one data seed (see the module docstring).

    Raises:
        DataError: runs with per-case results have different data seeds (or some have
            none recorded), or none has ``data_seed``.
    """
    from benchbox.analysis.methods import with_method_keys

    seeds = _data_seeds(board)
    if data_seed is not None:
        kept = board[[s == str(data_seed) for s in seeds]]
        if kept.empty:
            found = ", ".join(sorted({s or "not recorded" for s in seeds}))
            raise DataError(f"no run has data seed {data_seed} (the runs have {found})")
        return kept
    scored = set(cases["run_id"].astype(str))
    keyed = with_method_keys(board, by)
    first: dict[str, tuple[str, str]] = {}
    for run_id, seed, method in zip(
        board["run_id"].astype(str), seeds, keyed[list(by)].agg(" / ".join, axis=1), strict=True
    ):
        if run_id in scored:
            first.setdefault(seed, (run_id, method))
    if len(first) < 2:
        return board

    def said(seed: str) -> str:
        run_id, method = first[seed]
        if seed:
            return f"run {run_id} ({method}) has data seed {seed}"
        return f"run {run_id} ({method}) has none recorded (a row older than the column)"

    known = sorted(s for s in first if s)
    a, b = (known[0], known[1]) if len(known) > 1 else (known[0], "")
    hint = f"compare one data seed at a time with --data-seed {a}"
    if not b:
        hint = f"fill in its data_seed cell, or {hint}"
    raise DataError(
        f"cannot pair methods scored on different images: {said(a)} and {said(b)} (a case "
        f"id such as {cases['case_id'].iloc[0]} names a different image under each data "
        f"seed); {hint}"
    )


def _pairs(
    methods: list[str],
    values: NDArray,
    higher_is_better: bool,
    pairs: list[tuple[int, int]],
    indices: NDArray,
    alpha: float,
) -> list[dict[str, Any]]:
    """Paired difference, its bootstrap CI and the Holm-adjusted Wilcoxon test per pair."""
    tests = [stats.signed_rank(values[i], values[j]) for i, j in pairs]
    adjusted = stats.holm([t.pvalue for t in tests])
    out = []
    for (i, j), test, p_holm in zip(pairs, tests, adjusted, strict=True):
        d = values[i] - values[j]
        low, high = stats.bootstrap_ci(d, indices)
        favours_a = test.rank_biserial > 0 if higher_is_better else test.rank_biserial < 0
        better = None
        if p_holm <= alpha and test.rank_biserial != 0:
            better = methods[i] if favours_a else methods[j]
        out.append(
            {
                "a": methods[i],
                "b": methods[j],
                "difference": float(d.mean()),
                "ci_low": low,
                "ci_high": high,
                "p": test.pvalue,
                "p_holm": float(p_holm),
                "rank_biserial": test.rank_biserial,
                "n_nonzero": test.n,
                "n_zero": test.n_zero,
                "test": test.method,
                "better": better,
            }
        )
    return out


def compare(
    path: str | Path | Sequence[str | Path],
    metric: str,
    by: Sequence[str] = ("fusion", "segmenter"),
    reference: str | None = None,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = stats.DEFAULT_ALPHA,
    higher_is_better: bool | None = None,
    registry: Registry | None = None,
    exclude: Sequence[str] = (),
    data_seed: int | None = None,
) -> Comparison:
    """Compare the methods of the leaderboard ``path`` on one per-case ``metric``.

    Args:
        path: a leaderboard CSV with its ``.cases.csv`` companion beside it, or several
            leaderboards of one dataset (e.g. a 2D and a 3D reference), compared as one.
        metric: a per-case column, e.g. ``dice_lesion`` or ``ssim_mean``.
        by: the leaderboard columns that define a method.
        reference: compare every method with this one only (a method label such as
            ``mean / attunet``, or a unique value of one ``by`` column such as ``mean``);
            by default every pair is compared.
        resamples: bootstrap resamples of the cases.
        seed: seed of the resamples.
        alpha: significance level after Holm's adjustment.
        higher_is_better: the metric's direction; by default from the metric registry.
        registry: the registry to look the direction up in (default: the installed one).
        exclude: run ids to leave out (e.g. a run without ``metric``).
        data_seed: compare the runs of this data seed only (by default every run, which
            must then share one; see the module docstring).

    Raises:
        DataError: the leaderboard or its companion is missing, mixes datasets, or its
            methods were scored on different cases (or data seeds), or a run has no
            ``metric`` value at all.
        ConfigError: an unknown metric, column or reference.
    """
    by = [c.strip() for c in by if c.strip()]
    if not by:
        raise ConfigError("--by needs at least one column")
    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {alpha}")
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    board, cases, dataset = _read_all(paths, by)
    path = " + ".join(map(str, paths))
    board, cases = _exclude(board, cases, exclude)
    board = _one_data_seed(board, cases, by, data_seed)
    numeric = [c for c in cases.columns if c not in ("run_id", "case_id")]
    if metric not in numeric:
        close = difflib.get_close_matches(metric, numeric, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"columns: {', '.join(numeric)}"
        raise ConfigError(f"the per-case results of {path} have no metric {metric!r}; {hint}")
    if higher_is_better is None:
        higher_is_better = metric_direction(metric, registry)
    warnings: list[str] = []
    keys, runs, replicates, series = group_methods(board, cases, by, metric, warnings)
    case_ids, values, seed_means = case_matrix(keys, replicates, series, metric, warnings)
    labels = [label(k) for k in keys]

    mean = values.mean(axis=1)
    rank = stats.rank_scores(mean, higher_is_better)
    order = np.argsort(rank, kind="stable")
    keys = [keys[i] for i in order]
    labels = [labels[i] for i in order]
    runs = [runs[i] for i in order]
    replicates = [replicates[i] for i in order]
    seed_means = [seed_means[i] for i in order]
    values, mean, rank = values[order], mean[order], rank[order]
    for name, ids in zip(labels, replicates, strict=True):
        if len(ids) < MIN_SEEDS:
            warnings.append(
                f"{name}: {len(ids)} seed(s); the seed-to-seed spread needs at least "
                f"{MIN_SEEDS} to mean much"
            )

    k, n = values.shape
    indices = stats.bootstrap_indices(n, resamples, seed)
    ci = np.array([stats.bootstrap_ci(v, indices) for v in values])
    stability = stats.rank_stability(values, higher_is_better, indices)

    all_pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    every = _pairs(labels, values, higher_is_better, all_pairs, indices, alpha)
    wins = np.zeros((k, k), dtype=bool)
    for (i, j), pair in zip(all_pairs, every, strict=True):
        if pair["better"] == labels[i]:
            wins[i, j] = True
        elif pair["better"] == labels[j]:
            wins[j, i] = True
    share, sig_rank = stats.significance_ranking(wins)

    ref_label = None
    if reference is not None:
        ref_index = _find_reference(reference, labels, keys)
        ref_label = labels[ref_index]
        wanted = [(i, ref_index) for i in range(k) if i != ref_index]
        pairs = _pairs(labels, values, higher_is_better, wanted, indices, alpha)
    else:
        pairs = every
    if n < 6:
        warnings.append(
            f"only {n} cases: no two-sided Wilcoxon p-value can be below 0.05 with fewer than 6"
        )
    return Comparison(
        leaderboard=str(path),
        dataset=dataset,
        metric=metric,
        higher_is_better=higher_is_better,
        by=list(by),
        methods=labels,
        keys=keys,
        cases=case_ids,
        values=values,
        runs=runs,
        replicates=replicates,
        seed_means=seed_means,
        mean=mean,
        ci=ci,
        rank=rank,
        stability=stability,
        wins=wins,
        significance_share=share,
        significance_rank=sig_rank,
        pairs=pairs,
        reference=ref_label,
        resamples=resamples,
        seed=seed,
        alpha=alpha,
        warnings=warnings,
    )


def _find_reference(reference: str, labels: list[str], keys: list[dict[str, str]]) -> int:
    if reference in labels:
        return labels.index(reference)
    hits = [i for i, key in enumerate(keys) if reference in key.values()]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(
            f"--reference {reference!r} matches {len(hits)} methods "
            f"({', '.join(labels[i] for i in hits)}); give one, e.g. {labels[hits[0]]!r}"
        )
    close = difflib.get_close_matches(reference, labels, n=3, cutoff=0.3)
    hint = f"did you mean {', '.join(close)}?" if close else f"methods: {', '.join(labels)}"
    raise ConfigError(f"--reference {reference!r} is not a method of the leaderboard; {hint}")
