"""Segmentation metrics: analytic cases, empty-mask rules, bad input, and brute force.

The brute-force reference finds boundary voxels by visiting each voxel's face
neighbours one by one and measures every boundary-to-boundary distance with
``scipy.spatial.distance.cdist``: no erosion, no crop, no k-d tree.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from scipy.spatial.distance import cdist

from benchbox.errors import MetricInputError
from benchbox.metrics import segmentation as sm

DISTANCES = (sm.compute_hd, sm.compute_hd95, sm.compute_assd)
OVERLAPS = (sm.compute_dice, sm.compute_iou, sm.compute_precision, sm.compute_recall)


# -- brute force -----------------------------------------------------------------------
def brute_boundary(mask: np.ndarray) -> list[tuple[int, ...]]:
    out = []
    for idx in zip(*np.nonzero(mask), strict=True):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            nb = list(idx)
            nb[axis] += step
            if not 0 <= nb[axis] < mask.shape[axis] or not mask[tuple(nb)]:
                out.append(tuple(int(i) for i in idx))
                break
    return out


def brute_directed(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]):
    bp = np.array(brute_boundary(pred), dtype=float) * spacing
    br = np.array(brute_boundary(ref), dtype=float) * spacing
    d = cdist(bp, br)
    return d.min(axis=1), d.min(axis=0)


def brute_metrics(pred, ref, spacing, tolerance):
    d_pr, d_rp = brute_directed(pred, ref, spacing)
    both = np.concatenate([d_pr, d_rp])
    return {
        "hd": max(d_pr.max(), d_rp.max()),
        "hd95": max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)),
        "assd": both.mean(),
        "nsd": np.count_nonzero(both <= tolerance + sm.TIE_SLACK) / both.size,
    }


spacings2 = st.tuples(*[st.floats(0.25, 3.0)] * 2)
spacings3 = st.tuples(*[st.floats(0.25, 3.0)] * 3)


def masks(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return arrays(bool, shape, elements=st.booleans()).filter(lambda m: m.any())


@st.composite
def mask_pairs(draw: st.DrawFn, ndim: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    dims = st.integers(1, 9) if ndim == 2 else st.integers(1, 6)
    shape = tuple(draw(dims) for _ in range(ndim))
    spacing = draw(spacings2 if ndim == 2 else spacings3)
    return draw(masks(shape)), draw(masks(shape)), spacing


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(case=st.one_of(mask_pairs(2), mask_pairs(3)), tolerance=st.floats(0.0, 4.0))
def test_surface_metrics_match_brute_force(case, tolerance: float) -> None:
    pred, ref, spacing = case
    expected = brute_metrics(pred, ref, spacing, tolerance)
    assert sm.compute_hd(pred, ref, spacing) == pytest.approx(expected["hd"], rel=1e-12)
    assert sm.compute_hd95(pred, ref, spacing) == pytest.approx(expected["hd95"], rel=1e-12)
    assert sm.compute_assd(pred, ref, spacing) == pytest.approx(expected["assd"], rel=1e-12)
    assert sm.compute_nsd(pred, ref, spacing, tolerance) == pytest.approx(expected["nsd"])


@PROPERTY
@given(case=st.one_of(mask_pairs(2), mask_pairs(3)))
def test_directed_distances_are_exact_and_symmetric(case) -> None:
    pred, ref, spacing = case
    d_pr, d_rp = brute_directed(pred, ref, spacing)
    sd = sm.surface_distances(pred, ref, spacing)
    np.testing.assert_allclose(np.sort(sd.pred_to_ref), np.sort(d_pr), rtol=1e-12)
    np.testing.assert_allclose(np.sort(sd.ref_to_pred), np.sort(d_rp), rtol=1e-12)
    for fn in (sm.compute_hd, sm.compute_hd95, sm.compute_assd, sm.compute_nsd):
        assert fn(pred, ref, spacing) == fn(ref, pred, spacing)


@settings(max_examples=60, deadline=None)
@given(mask=st.one_of(masks((7, 5)), masks((4, 5, 3))))
def test_boundary_is_erosion_complement_and_brute_force(mask: np.ndarray) -> None:
    via_erosion = mask & ~ndimage.binary_erosion(mask)
    np.testing.assert_array_equal(sm.boundary(mask), via_erosion)
    assert sorted(map(tuple, np.argwhere(sm.boundary(mask)))) == brute_boundary(mask)


# -- analytic --------------------------------------------------------------------------
def test_overlap_metrics_on_two_offset_bands() -> None:
    pred = np.zeros((10, 10), bool)
    ref = np.zeros((10, 10), bool)
    pred[0:4] = True  # 40 voxels
    ref[2:6] = True  # 40 voxels, 20 shared
    assert sm.compute_dice(pred, ref) == pytest.approx(2 * 20 / 80)
    assert sm.compute_iou(pred, ref) == pytest.approx(20 / 60)
    assert sm.compute_precision(pred, ref) == pytest.approx(20 / 40)
    assert sm.compute_recall(pred, ref) == pytest.approx(20 / 40)


def test_overlap_metrics_on_nested_cubes() -> None:
    ref = np.zeros((6, 6, 6), bool)
    ref[1:5, 1:5, 1:5] = True  # 64
    pred = np.zeros_like(ref)
    pred[2:4, 2:4, 2:4] = True  # 8, inside ref
    assert sm.compute_dice(pred, ref) == pytest.approx(16 / 72)
    assert sm.compute_iou(pred, ref) == pytest.approx(8 / 64)
    assert sm.compute_precision(pred, ref) == 1.0
    assert sm.compute_recall(pred, ref) == pytest.approx(8 / 64)
    assert sm.compute_dice(ref, ref) == 1.0


def test_dice_accepts_zero_one_integers_and_matches_iou_identity() -> None:
    rng = np.random.default_rng(0)
    pred = (rng.random((20, 20)) > 0.5).astype(np.uint8)
    ref = (rng.random((20, 20)) > 0.4).astype(np.int64)
    dice, iou = sm.compute_dice(pred, ref), sm.compute_iou(pred, ref)
    assert iou == pytest.approx(dice / (2 - dice))


def test_single_voxels_give_their_distance_in_mm() -> None:
    pred = np.zeros((8, 8), bool)
    ref = np.zeros((8, 8), bool)
    pred[0, 0] = True
    ref[3, 4] = True
    assert sm.compute_hd(pred, ref, (1.0, 1.0)) == pytest.approx(5.0)
    spacing = (2.0, 0.5)
    expected = math.hypot(3 * 2.0, 4 * 0.5)
    for fn in DISTANCES:
        assert fn(pred, ref, spacing) == pytest.approx(expected)
    assert sm.compute_nsd(pred, ref, spacing, tolerance=expected) == 1.0
    assert sm.compute_nsd(pred, ref, spacing, tolerance=expected - 1e-6) == 0.0


def test_hd95_is_the_larger_directed_percentile_not_the_pooled_one() -> None:
    # ref: a 1x20 line; pred: the same line plus two voxels 20 mm away. pred has 22
    # boundary voxels, 2 of them (9%) at 20 mm: its directed P95 interpolates between
    # sorted positions 19 (0 mm) and 20 (20 mm) at 0.95 * 21 = 19.95, giving 19 mm.
    # Pooled with ref's 20 zeros, the 2 outliers are under 5% and the P95 is 0.
    ref = np.zeros((30, 30), bool)
    ref[5, 5:25] = True
    pred = ref.copy()
    pred[25, 5:7] = True
    sd = sm.surface_distances(pred, ref, (1.0, 1.0))
    assert sorted(sd.pred_to_ref)[-2:] == [20.0, 20.0] and sd.pred_to_ref.size == 22
    assert not sd.ref_to_pred.any() and sd.ref_to_pred.size == 20
    assert sm.compute_hd95(pred, ref, (1.0, 1.0)) == pytest.approx(19.0)
    pooled = np.percentile(np.concatenate([sd.pred_to_ref, sd.ref_to_pred]), 95)
    assert pooled == 0.0
    assert sm.compute_hd(pred, ref, (1.0, 1.0)) == pytest.approx(20.0)


def test_nsd_counts_a_distance_equal_to_the_tolerance() -> None:
    pred = np.zeros((6, 6), bool)
    ref = np.zeros((6, 6), bool)
    pred[3, 1] = True
    ref[2, 1] = True
    # 3 * 0.9 - 2 * 0.9 = 0.9000000000000001 in floating point
    assert sm.compute_nsd(pred, ref, (0.9, 1.0), tolerance=0.9) == 1.0


# -- empty masks -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(10, 20), (4, 10, 20)])
def test_both_empty_is_perfect(shape: tuple[int, ...]) -> None:
    empty = np.zeros(shape, bool)
    spacing = (0.5,) * len(shape)
    for fn in OVERLAPS:
        assert fn(empty, empty) == 1.0
    for fn in DISTANCES:
        assert fn(empty, empty, spacing) == 0.0
    assert sm.compute_nsd(empty, empty, spacing) == 1.0


@pytest.mark.parametrize("empty_side", ["pred", "ref"])
def test_one_empty_is_worst_with_the_diagonal(empty_side: str) -> None:
    full = np.zeros((10, 20), bool)
    full[2:5, 3:9] = True
    empty = np.zeros_like(full)
    pred, ref = (empty, full) if empty_side == "pred" else (full, empty)
    spacing = (0.5, 2.0)
    diagonal = math.hypot(10 * 0.5, 20 * 2.0)
    for fn in OVERLAPS:
        assert fn(pred, ref) == 0.0
    for fn in DISTANCES:
        assert fn(pred, ref, spacing) == pytest.approx(diagonal)
    assert sm.compute_nsd(pred, ref, spacing, tolerance=1e6) == 0.0


def test_diagonal_exceeds_every_possible_distance() -> None:
    pred = np.zeros((5, 7, 9), bool)
    ref = np.zeros_like(pred)
    pred[0, 0, 0] = True
    ref[-1, -1, -1] = True
    spacing = (3.0, 1.0, 0.7)
    assert sm.compute_hd(pred, ref, spacing) < sm.image_diagonal(pred.shape, spacing)


# -- bad input -------------------------------------------------------------------------
def test_shape_mismatch_names_both() -> None:
    with pytest.raises(MetricInputError, match=r"pred has shape \(4, 4\) but ref"):
        sm.compute_dice(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_non_binary_mask_is_named() -> None:
    labels = np.zeros((4, 4), int)
    labels[0, 0] = 2
    with pytest.raises(MetricInputError, match=r"ref must be a binary mask.*found 2"):
        sm.compute_hd95(np.zeros((4, 4), bool), labels, (1.0, 1.0))


@pytest.mark.parametrize("spacing", [(1.0,), (1.0, 1.0, 1.0), 1.0, (1.0, 0.0), (1.0, np.nan)])
def test_bad_spacing_is_named(spacing) -> None:
    mask = np.ones((4, 4), bool)
    with pytest.raises(MetricInputError, match="spacing"):
        sm.compute_hd(mask, mask, spacing)


def test_bad_tolerance_is_named() -> None:
    mask = np.ones((4, 4), bool)
    with pytest.raises(MetricInputError, match="tolerance"):
        sm.compute_nsd(mask, mask, (1.0, 1.0), tolerance=-1)


def test_one_dimensional_mask_is_refused() -> None:
    with pytest.raises(MetricInputError, match="pred must be a 2D or 3D mask"):
        sm.compute_dice(np.ones(5, bool), np.ones(5, bool))


# -- sharing ---------------------------------------------------------------------------
def test_share_computations_computes_each_pair_once(monkeypatch) -> None:
    calls = []
    original = sm._surface_distances

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(sm, "_surface_distances", counting)
    pred = np.zeros((9, 9), bool)
    pred[2:6, 2:6] = True
    ref = np.roll(pred, 1, axis=0)
    alone = [fn(pred, ref, (1.0, 2.0)) for fn in DISTANCES]
    assert len(calls) == 3
    with sm.share_computations():
        shared = [fn(pred, ref, (1.0, 2.0)) for fn in DISTANCES]
        other = sm.compute_hd(pred, ref, (2.0, 2.0))  # another spacing: computed anew
    assert len(calls) == 5
    assert shared == alone and other != alone[0]
