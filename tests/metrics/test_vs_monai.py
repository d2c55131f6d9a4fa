"""benchbox's segmentation metrics against MONAI's (optional: ``pip install .[compare]``).

Expected agreement: on non-empty masks HD, HD95, ASSD (symmetric), NSD (voxel counts)
and Dice equal MONAI's to float32 precision. Expected difference: MONAI returns NaN
(HD95) or inf (ASSD) when one mask is empty, and its metric object drops NaN cases
from the mean; benchbox gives the documented empty-mask values and keeps every case.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

monai_metrics = pytest.importorskip("monai.metrics")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
torch = pytest.importorskip("torch")

from benchbox.metrics import segmentation as sm  # noqa: E402


def _t(mask: np.ndarray):
    return torch.from_numpy(mask[None, None].astype(np.float32))


def _random_blobs(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    pred = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    pred |= np.roll(ref, 2, axis=0) & (rng.random(shape) > 0.2)
    return pred, ref


CASES = [
    ((24, 20, 16), (2.5, 0.8, 1.1), 0),
    ((48, 40), (0.7, 1.9), 1),
    ((20, 22, 18), (1, 1, 1), 2),
]


@pytest.mark.parametrize(("shape", "spacing", "seed"), CASES)
def test_distances_equal_monai_on_non_empty_masks(shape, spacing, seed) -> None:
    pred, ref = _random_blobs(shape, seed)
    assert pred.any() and ref.any()
    p, r, sp = _t(pred), _t(ref), list(spacing)
    kw = {"include_background": True, "spacing": sp}
    expected = {
        "hd": float(monai_metrics.compute_hausdorff_distance(p, r, **kw)),
        "hd95": float(monai_metrics.compute_hausdorff_distance(p, r, percentile=95, **kw)),
        "assd": float(monai_metrics.compute_average_surface_distance(p, r, symmetric=True, **kw)),
        "nsd": float(monai_metrics.compute_surface_dice(p, r, [1.5], **kw)),
        "dice": float(monai_metrics.compute_dice(p, r, include_background=True)),
    }
    got = {
        "hd": sm.compute_hd(pred, ref, spacing),
        "hd95": sm.compute_hd95(pred, ref, spacing),
        "assd": sm.compute_assd(pred, ref, spacing),
        "nsd": sm.compute_nsd(pred, ref, spacing, tolerance=1.5),
        "dice": sm.compute_dice(pred, ref),
    }
    assert got == pytest.approx(expected, rel=1e-5)


def test_monai_gives_nan_for_an_empty_prediction_and_drops_it_from_the_mean() -> None:
    ref = np.zeros((12, 12), bool)
    ref[3:7, 2:9] = True
    good, empty = np.roll(ref, 1, axis=1), np.zeros_like(ref)
    metric = monai_metrics.HausdorffDistanceMetric(
        include_background=True, percentile=95, reduction="mean"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty prediction
        metric(
            torch.from_numpy(np.stack([good, empty])[:, None]).float(), _t(ref).repeat(2, 1, 1, 1)
        )
        per_case = metric.get_buffer().flatten().tolist()
        aggregate = float(metric.aggregate())
    ours = [sm.compute_hd95(good, ref, (1, 1)), sm.compute_hd95(empty, ref, (1, 1))]
    assert per_case[0] == pytest.approx(ours[0]) and np.isnan(per_case[1])
    assert aggregate == pytest.approx(ours[0])  # the failed case silently vanished
    assert ours[1] == pytest.approx(sm.image_diagonal((12, 12), (1, 1)))
    assert np.mean(ours) > aggregate  # benchbox's mean counts the failure


def test_monai_has_no_value_for_two_empty_masks() -> None:
    empty = np.zeros((8, 8), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = float(monai_metrics.compute_hausdorff_distance(_t(empty), _t(empty), True))
        nsd = float(monai_metrics.compute_surface_dice(_t(empty), _t(empty), [1.0], True))
    assert np.isnan(hd) and np.isnan(nsd)
    assert sm.compute_hd95(empty, empty, (1, 1)) == 0.0
    assert sm.compute_nsd(empty, empty, (1, 1)) == 1.0


def test_ms_ssim_equals_monai() -> None:
    from scipy import ndimage

    from benchbox.metrics import fusion as fm

    rng = np.random.default_rng(7)
    a, b = (ndimage.gaussian_filter(rng.random((180, 200)), s) for s in (1.5, 3.0))
    a, b = ((x - x.min()) / (x.max() - x.min()) for x in (a, b))
    f = np.clip(0.5 * a + 0.5 * b + 0.02 * rng.standard_normal(a.shape), 0, 1)
    expected = [
        float(
            monai_metrics.compute_ms_ssim(
                torch.from_numpy(f)[None, None], torch.from_numpy(x)[None, None], 2, 1.0
            )
        )
        for x in (a, b)
    ]
    assert fm.compute_ms_ssim(f, a, b) == pytest.approx(np.mean(expected), abs=1e-5)
