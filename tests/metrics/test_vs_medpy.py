"""benchbox's segmentation metrics against medpy's (optional: ``pip install .[compare]``).

Expected agreement: Dice, HD and ASSD (medpy >= 0.5.2 pools both directions, as
benchbox does). Expected difference: medpy's HD95 is the 95th percentile of both
directed distance sets pooled together, benchbox's (like MONAI's) the larger of the
two directed 95th percentiles, so medpy's is never larger and can be much smaller.
medpy raises on an empty mask where benchbox applies its empty-mask rule.
"""

from __future__ import annotations

import numpy as np
import pytest

binary = pytest.importorskip("medpy.metric.binary")

from benchbox.metrics import segmentation as sm  # noqa: E402


def _pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    pred = (ndimage.gaussian_filter(rng.random(shape), 2) > 0.55) | np.roll(ref, 1, axis=-1)
    return pred, ref


@pytest.mark.parametrize(
    ("shape", "spacing", "seed"), [((20, 18, 16), (2.0, 0.9, 0.7), 0), ((40, 36), (0.5, 1.5), 1)]
)
def test_dice_hd_assd_equal_medpy(shape, spacing, seed) -> None:
    pred, ref = _pair(shape, seed)
    assert sm.compute_dice(pred, ref) == pytest.approx(binary.dc(pred, ref), rel=1e-12)
    assert sm.compute_hd(pred, ref, spacing) == pytest.approx(
        binary.hd(pred, ref, spacing), rel=1e-12
    )
    assert sm.compute_assd(pred, ref, spacing) == pytest.approx(
        binary.assd(pred, ref, spacing), rel=1e-12
    )


@pytest.mark.parametrize(
    ("shape", "spacing", "seed"), [((20, 18, 16), (2.0, 0.9, 0.7), 2), ((40, 36), (0.5, 1.5), 3)]
)
def test_medpy_hd95_is_the_pooled_percentile(shape, spacing, seed) -> None:
    pred, ref = _pair(shape, seed)
    sd = sm.surface_distances(pred, ref, spacing)
    pooled = np.percentile(np.concatenate([sd.pred_to_ref, sd.ref_to_pred]), 95)
    assert binary.hd95(pred, ref, spacing) == pytest.approx(pooled, rel=1e-12)
    assert binary.hd95(pred, ref, spacing) <= sm.compute_hd95(pred, ref, spacing) + 1e-12


def test_medpy_hd95_misses_an_outlier_that_benchbox_reports() -> None:
    # The case of test_segmentation.py: 2 of pred's 22 boundary voxels lie 20 mm away.
    ref = np.zeros((30, 30), bool)
    ref[5, 5:25] = True
    pred = ref.copy()
    pred[25, 5:7] = True
    assert binary.hd95(pred, ref) == pytest.approx(0.0)
    assert sm.compute_hd95(pred, ref, (1.0, 1.0)) == pytest.approx(19.0)


def test_medpy_raises_on_an_empty_mask() -> None:
    ref = np.zeros((8, 8), bool)
    ref[2:4, 2:4] = True
    with pytest.raises(RuntimeError):
        binary.hd95(np.zeros_like(ref), ref)
    assert sm.compute_hd95(np.zeros_like(ref), ref, (1, 1)) == pytest.approx(np.hypot(8, 8))
