"""Paired statistics against hand-computed cases and SciPy's / statsmodels' own results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from benchbox.analysis import stats


def test_signed_rank_exact_hand_cases():
    # d = 1..5 all positive: only 1 of the 32 sign patterns is as extreme on each side.
    r = stats.signed_rank([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert (r.pvalue, r.r_plus, r.r_minus, r.n, r.n_zero) == (pytest.approx(2 / 32), 15, 0, 5, 0)
    assert r.rank_biserial == 1.0 and r.method == "exact"
    # d = 1, -2, 3, 4, 5: R- = 2; sign patterns with R- <= 2 are {}, {1}, {2}: 3 of 32.
    r = stats.signed_rank([1, -2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert r.pvalue == pytest.approx(6 / 32)
    assert (r.r_plus, r.r_minus) == (13, 2)
    assert r.rank_biserial == pytest.approx(11 / 15)


def test_signed_rank_drops_zero_differences():
    a = [0.9, 0.8, 0.7, 1.0, 1.0, 0.5]
    b = [0.8, 0.8, 0.5, 1.0, 0.9, 0.45]
    r = stats.signed_rank(a, b)
    assert (r.n, r.n_zero) == (4, 2)
    # The same as testing the four non-zero differences alone.
    assert r.pvalue == pytest.approx(stats.signed_rank([0.1, 0.2, 0.1, 0.05], [0] * 4).pvalue)
    # Every difference zero: nothing to test.
    same = stats.signed_rank([1.0, 0.5], [1.0, 0.5])
    assert (same.pvalue, same.rank_biserial, same.n, same.n_zero) == (1.0, 0.0, 0, 2)


def test_signed_rank_treats_float_noise_as_ties_and_zeros():
    a = np.array([0.3, 0.6, 0.9, 0.7])
    b = np.array([0.2, 0.5, 0.8, (0.1 + 0.2 + 0.4)])  # last one equal up to rounding
    r = stats.signed_rank(a, b)
    assert (r.n, r.n_zero) == (3, 1)
    assert r.r_plus == pytest.approx(6.0)  # the three 0.1 differences tie at rank 2


@pytest.mark.parametrize(
    ("name", "d"),
    [
        ("exact", np.array([0.3, -0.1, 0.25, 0.4, -0.05, 0.2, 0.15, 0.33, -0.02, 0.5])),
        ("permutation", np.array([0.1, 0.1, -0.2, 0.3, 0.3, 0.3, -0.1, 0.4])),
        ("normal", np.round(np.random.default_rng(3).normal(0.05, 0.1, 80), 2)),
    ],
)
def test_signed_rank_equals_scipy(name, d):
    r = stats.signed_rank(d, np.zeros_like(d))
    assert r.method == name
    nonzero = d[d != 0]
    ranks = sps.rankdata(np.abs(nonzero))
    assert r.r_plus == pytest.approx(ranks[nonzero > 0].sum())
    # SciPy's default (method="auto", zero_method="wilcox") makes the same choice.
    expected = sps.wilcoxon(d)
    assert r.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert min(r.r_plus, r.r_minus) == pytest.approx(expected.statistic)


def test_signed_rank_normal_approximation_by_hand():
    # 60 differences with ties: z from the tie-corrected variance, no continuity correction.
    rng = np.random.default_rng(0)
    d = rng.integers(-3, 6, 60).astype(float)
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    n = d.size
    _, counts = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - (counts**3 - counts).sum() / 48
    z = (ranks[d > 0].sum() - n * (n + 1) / 4) / np.sqrt(var)
    r = stats.signed_rank(d, np.zeros_like(d))
    assert r.method == "normal"
    assert r.pvalue == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)


def test_holm_hand_example():
    # Sorted 0.01, 0.02, 0.03, 0.04 -> 4*0.01, 3*0.02, 2*0.03, 1*0.04, running maximum.
    p = [0.04, 0.01, 0.03, 0.02]
    assert stats.holm(p).tolist() == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # The running maximum keeps the order; values are capped at 1.
    assert stats.holm([0.5, 0.001, 0.6]).tolist() == pytest.approx([1.0, 0.003, 1.0])
    assert stats.holm([]).size == 0


def test_holm_equals_statsmodels():
    multipletests = pytest.importorskip(
        "statsmodels.stats.multitest", reason="statsmodels not installed"
    ).multipletests
    p = np.random.default_rng(1).uniform(0, 0.2, 15)
    p[3] = p[7]  # a tie
    assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_bootstrap_ci_covers_the_known_mean():
    # Cases from a normal with mean 0.7: the 95 % interval of the sample mean holds 0.7
    # in about 95 % of repeated experiments, and matches the t interval's width.
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        x = rng.normal(0.7, 0.1, 40)
        low, high = stats.bootstrap_ci(x, stats.bootstrap_indices(40, 1000, seed=trial))
        covered += low <= 0.7 <= high
    assert 0.88 <= covered / 200 <= 0.99
    x = rng.normal(0.7, 0.1, 40)
    low, high = stats.bootstrap_ci(x, stats.bootstrap_indices(40, 20000, seed=0))
    half = 1.96 * x.std(ddof=0) / np.sqrt(40)
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half), abs=0.004)


def test_bootstrap_ci_equals_scipy_percentile():
    x = np.random.default_rng(2).gamma(2.0, 0.1, 30)
    ours = stats.bootstrap_ci(x, stats.bootstrap_indices(30, 20000, seed=1))
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", rng=4)
    ci = ref.confidence_interval
    assert ours == pytest.approx((ci.low, ci.high), abs=0.003)


def test_bootstrap_is_seeded_and_constant_data_has_a_point_interval():
    a = stats.bootstrap_indices(10, 50, seed=3)
    assert (a == stats.bootstrap_indices(10, 50, seed=3)).all()
    assert not (a == stats.bootstrap_indices(10, 50, seed=4)).all()
    assert stats.bootstrap_ci(np.full(10, 0.5), a) == (0.5, 0.5)


def test_rank_scores_direction_and_ties():
    assert stats.rank_scores([0.9, 0.8, 0.9, 0.1], True).tolist() == [1, 3, 1, 4]
    assert stats.rank_scores([2.0, 1.0, np.nan], False).tolist() == [2, 1, 3]


def test_significance_ranking():
    wins = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], bool)
    share, rank = stats.significance_ranking(wins)
    assert share.tolist() == [1.0, 0.5, 0.0]
    assert rank.tolist() == [1, 2, 3]
    share, rank = stats.significance_ranking(np.zeros((3, 3), bool))
    assert rank.tolist() == [1, 1, 1]


def test_rank_stability_dominating_method_has_interval_1_1():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 30)
    values = np.stack([base + 0.1, base, base - rng.uniform(0, 0.02, 30)])
    st = stats.rank_stability(values, True, stats.bootstrap_indices(30, 500, seed=0))
    assert (st.rank.tolist(), st.low[0], st.high[0], st.median[0]) == ([1, 2, 3], 1, 1, 1)
    assert st.frequency[0].tolist() == [1.0, 0.0, 0.0]
    assert st.frequency.sum(axis=1) == pytest.approx([1, 1, 1])
    # Lower is better: the order reverses.
    st = stats.rank_stability(values, False, stats.bootstrap_indices(30, 500, seed=0))
    assert st.rank.tolist() == [3, 2, 1] and (st.low[0], st.high[0]) == (3, 3)


def test_rank_stability_of_two_equal_methods_spans_both_ranks():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 50)
    values = np.stack([a, a[::-1]])  # same values, different cases: no true difference
    st = stats.rank_stability(values, True, stats.bootstrap_indices(50, 1000, seed=0))
    assert st.low.tolist() == [1, 1] and st.high.tolist() == [2, 2]
    assert 0.2 < st.frequency[0, 0] < 0.8
