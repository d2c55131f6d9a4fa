"""Paired statistics for comparing methods case by case: pure NumPy/SciPy, no I/O.

Everything here takes a matrix of per-case scores, one row per method and one column
per case (the same cases, in the same order, for every method), and answers the
questions a challenge organiser asks (Wiesenfarth et al. 2021, challengeR; Maier-Hein
et al. 2018):

* :func:`bootstrap_indices` draws the case resamples once; every interval and every
  rank distribution below uses the same resamples, so the methods are always compared
  on the same cases (a paired bootstrap).
* :func:`bootstrap_ci` is the percentile bootstrap interval of a mean.
* :func:`signed_rank` is the Wilcoxon signed-rank test of paired differences (SciPy),
  with zero differences dropped, and the matched-pairs rank-biserial correlation as the
  effect size.
* :func:`holm` adjusts p-values for the number of comparisons (Holm 1979).
* :func:`rank_scores`, :func:`significance_ranking` and :func:`rank_stability` rank the
  methods: by the mean (aggregate-then-rank), by the share of other methods each one
  beats significantly, and how the mean-based rank moves over the bootstrap resamples.

Ties between ranks take the smallest rank (1, 1, 3), as in challengeR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_RESAMPLES",
    "EXACT_MAX",
    "PERMUTATION_MAX",
    "RankStability",
    "SignedRank",
    "bootstrap_ci",
    "bootstrap_indices",
    "holm",
    "rank_scores",
    "rank_stability",
    "resampled_means",
    "signed_rank",
    "significance_ranking",
]

#: Default number of bootstrap resamples of the cases.
DEFAULT_RESAMPLES = 2000
#: Significance level of the paired tests (after Holm's adjustment).
DEFAULT_ALPHA = 0.05
#: Largest number of non-zero differences for which the p-value is computed exactly.
EXACT_MAX = 50
#: Largest number of non-zero differences with ties for the exhaustive permutation test.
PERMUTATION_MAX = 13


def bootstrap_indices(n_cases: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> NDArray:
    """Case indices of ``resamples`` bootstrap samples, drawn with replacement.

    Args:
        n_cases: the number of cases, at least 1.
        resamples: the number of bootstrap samples, at least 1.
        seed: seed of NumPy's default generator; the same seed gives the same samples.

    Returns:
        An int array of shape ``(resamples, n_cases)``.
    """
    if n_cases < 1 or resamples < 1:
        raise ValueError(f"need at least one case and one resample, got {n_cases}, {resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_cases, size=(resamples, n_cases))


def resampled_means(values: ArrayLike, indices: NDArray) -> NDArray:
    """The mean of ``values`` (shape ``(..., n_cases)``) over each resample of ``indices``.

    Returns:
        Shape ``(..., resamples)``.
    """
    x = np.asarray(values, dtype=np.float64)
    return x[..., indices].mean(axis=-1)


def bootstrap_ci(values: ArrayLike, indices: NDArray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    For paired differences pass ``a - b``: the interval then comes from resampling cases
    with both methods' scores kept together. The interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles (linear interpolation) of the resampled means; it
    describes the uncertainty from the choice of cases, not from training seeds.

    Args:
        values: one number per case, shape ``(n_cases,)``.
        indices: resamples from :func:`bootstrap_indices` for ``n_cases`` cases.
        level: the coverage, in (0, 1).

    Returns:
        ``(low, high)``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = resampled_means(values, indices)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class SignedRank:
    """The Wilcoxon signed-rank test of paired differences ``d = a - b``.

    Attributes:
        pvalue: two-sided p-value; 1.0 when every difference is zero.
        r_plus: sum of the ranks of the positive differences.
        r_minus: sum of the ranks of the negative differences.
        n: number of non-zero differences (the ones ranked and tested).
        n_zero: number of zero differences, dropped before ranking.
        rank_biserial: matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)``
            in [-1, 1]: +1 when every non-zero difference is positive (``a`` higher on
            every case that differs); 0 when there is none.
        method: how the p-value was computed: ``"exact"``, ``"permutation"`` or
            ``"normal"``.
    """

    pvalue: float
    r_plus: float
    r_minus: float
    n: int
    n_zero: int
    rank_biserial: float
    method: str


def signed_rank(a: ArrayLike, b: ArrayLike) -> SignedRank:
    """Wilcoxon signed-rank test of ``a`` against ``b``, paired by position.

    Zero differences are dropped first (Wilcoxon's own treatment, SciPy's
    ``zero_method="wilcox"`` and R's ``wilcox.test``): a case where both methods score
    the same says nothing about which is better. The absolute remaining differences are
    ranked, tied values sharing their average rank. The two-sided p-value then comes
    from :func:`scipy.stats.wilcoxon`:

    * ``exact`` null distribution when at most :data:`EXACT_MAX` differences remain and
      no two have the same absolute value;
    * an exhaustive ``permutation`` of the signs (exact given the ties) when there are
      ties and at most :data:`PERMUTATION_MAX` differences;
    * otherwise the ``normal`` approximation with the tie-corrected variance and no
      continuity correction.

    Differences within ``1e-12`` of the scores' magnitude count as zero, and the rest are
    rounded to 12 significant digits before ranking, so that values equal up to
    floating-point noise (of averaging seeds, say) count as zeros and ties (SciPy's
    documentation warns about this).

    Args:
        a: scores of the first method, one per case.
        b: scores of the second method on the same cases.

    Returns:
        A :class:`SignedRank`.
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be 1D and of one length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("a and b must be finite")
    d = _round(x - y, scale=max(float(np.abs(x).max(initial=0)), float(np.abs(y).max(initial=0))))
    nonzero = d[d != 0]
    n, n_zero = int(nonzero.size), int(d.size - nonzero.size)
    if n == 0:
        return SignedRank(1.0, 0.0, 0.0, 0, n_zero, 0.0, "exact")
    ranks = stats.rankdata(np.abs(nonzero))
    r_plus = float(ranks[nonzero > 0].sum())
    r_minus = float(ranks[nonzero < 0].sum())
    ties = np.unique(np.abs(nonzero)).size < n
    method: str | stats.PermutationMethod
    if not ties and n <= EXACT_MAX:
        method, label = "exact", "exact"
    elif n <= PERMUTATION_MAX:
        method, label = stats.PermutationMethod(n_resamples=2**n), "permutation"
    else:
        method, label = "asymptotic", "normal"
    result = stats.wilcoxon(
        nonzero, zero_method="wilcox", correction=False, alternative="two-sided", method=method
    )
    pvalue = float(min(1.0, result.pvalue))
    effect = (r_plus - r_minus) / (r_plus + r_minus)
    return SignedRank(pvalue, r_plus, r_minus, n, n_zero, effect, label)


def _round(d: NDArray, scale: float) -> NDArray:
    d = np.where(np.abs(d) <= 1e-12 * max(scale, 1.0), 0.0, d)
    out: NDArray = np.array([float(f"{v:.12g}") for v in d], dtype=np.float64)
    return out


def holm(pvalues: ArrayLike) -> NDArray:
    """Holm's step-down adjustment of p-values for multiple comparisons.

    Sort the ``m`` p-values ascending; the ``i``-th smallest (from 0) is multiplied by
    ``m - i``, the running maximum keeps the adjusted values in the same order, and they
    are capped at 1. A comparison is significant at level alpha when its adjusted
    p-value is at most alpha; this controls the family-wise error rate under any
    dependence between the tests. Written out here (five lines) because SciPy has no
    Holm adjustment and statsmodels would be a dependency for one function; the tests
    check it against a hand example and statsmodels when installed.

    Args:
        pvalues: the p-values, any shape.

    Returns:
        The adjusted p-values, same shape and order.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    m = flat.size
    if m == 0:
        return p.copy()
    order = np.argsort(flat, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * flat[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.reshape(p.shape)


def rank_scores(scores: ArrayLike, higher_is_better: bool, axis: int = 0) -> NDArray:
    """Rank methods by their scores along ``axis``: 1 is the best, ties share the
    smallest rank (1, 1, 3). NaN scores rank last."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    key = -s if higher_is_better else s
    key = np.where(np.isnan(key), np.inf, key)
    ranks: NDArray = rankdata(key, method="min", axis=axis).astype(np.int64)
    return ranks


def significance_ranking(wins: ArrayLike) -> tuple[NDArray, NDArray]:
    """Rank methods by the share of the other methods each beats significantly.

    Args:
        wins: boolean ``(k, k)`` matrix; ``wins[i, j]`` is True when method ``i`` is
            significantly better than method ``j``.

    Returns:
        ``(share, rank)``: the share of the other ``k - 1`` methods each method beats,
        and the rank by that share (1 = the most wins; ties share the smallest rank).
    """
    w = np.asarray(wins, dtype=bool)
    k = w.shape[0]
    if w.shape != (k, k):
        raise ValueError(f"wins must be a square matrix, got shape {w.shape}")
    share = w.sum(axis=1) / max(k - 1, 1)
    return share, rank_scores(share, higher_is_better=True)


@dataclass(frozen=True)
class RankStability:
    """How the mean-based rank of each method varies over bootstrap resamples of cases.

    Attributes:
        rank: the rank on all cases.
        median: the median bootstrap rank.
        low: the 2.5 % quantile of the bootstrap ranks.
        high: the 97.5 % quantile; ``[low, high]`` is the 95 % rank interval.
        frequency: ``(k, k)``; ``frequency[i, r - 1]`` is the share of resamples in which
            method ``i`` had rank ``r`` (the blob plot draws these).
        resamples: the number of resamples.
    """

    rank: NDArray
    median: NDArray
    low: NDArray
    high: NDArray
    frequency: NDArray
    resamples: int


def rank_stability(
    values: ArrayLike, higher_is_better: bool, indices: NDArray, level: float = 0.95
) -> RankStability:
    """Bootstrap rank stability of aggregate-then-rank on the mean.

    Each resample draws cases with replacement (the same cases for every method, from
    ``indices``), averages each method over them and ranks the means. The quantiles are
    the empirical ones (``inverted_cdf``), so they are ranks that occurred.

    Args:
        values: ``(k methods, n cases)`` scores.
        higher_is_better: the metric's direction.
        indices: resamples from :func:`bootstrap_indices` for ``n`` cases.
        level: coverage of the rank interval.

    Returns:
        A :class:`RankStability`.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be (methods, cases), got shape {x.shape}")
    k = x.shape[0]
    full = rank_scores(x.mean(axis=1), higher_is_better)
    ranks = rank_scores(resampled_means(x, indices), higher_is_better, axis=0)  # (k, B)
    tail = (1 - level) / 2
    q = np.quantile(ranks, [tail, 0.5, 1 - tail], axis=1, method="inverted_cdf")
    frequency = np.stack([np.bincount(r - 1, minlength=k) for r in ranks]) / ranks.shape[1]
    return RankStability(
        rank=full,
        median=q[1].astype(np.int64),
        low=q[0].astype(np.int64),
        high=q[2].astype(np.int64),
        frequency=frequency,
        resamples=int(ranks.shape[1]),
    )
