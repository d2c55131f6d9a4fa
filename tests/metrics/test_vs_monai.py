"""benchbox's segmentation metrics against MONAI's (optional: ``pip install .[compare]``).

Expected agreement: on non-empty masks HD, HD95, ASSD (symmetric), NSD (voxel counts)
and Dice equal MONAI's to float32 precision. Expected difference: MONAI returns NaN
(HD95) or inf (ASSD) when one mask is empty, and its metric object drops NaN cases
from the mean; benchbox gives the documented empty-mask values and keeps every case.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
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


def test_an_empty_prediction_counts_in_benchbox_mean_at_the_worst_distance() -> None:
    """Where MONAI has no value (an empty prediction), benchbox scores the image diagonal
    and keeps the case in the mean; where MONAI has one, they agree."""
    from benchbox.metrics.summary import summarize

    ref = np.zeros((12, 12), bool)
    ref[3:7, 2:9] = True
    good, empty = np.roll(ref, 1, axis=1), np.zeros_like(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monai_good = float(
            monai_metrics.compute_hausdorff_distance(_t(good), _t(ref), True, percentile=95)
        )
    ours = [sm.compute_hd95(good, ref, (1, 1)), sm.compute_hd95(empty, ref, (1, 1))]
    assert ours[0] == pytest.approx(monai_good)
    assert ours[1] == pytest.approx(sm.image_diagonal((12, 12), (1, 1)))
    table = pd.DataFrame(
        [{"case_id": "good", "hd95_r": ours[0], "pred_empty_r": 0.0, "ref_empty_r": 0.0},
         {"case_id": "empty", "hd95_r": ours[1], "pred_empty_r": 1.0, "ref_empty_r": 0.0}]
    )  # fmt: skip
    summary = summarize(table)
    assert summary["hd95_r"] == pytest.approx(np.mean(ours))  # the failure is counted
    assert summary["n_pred_empty_r"] == 1 and summary["n_cases"] == 2


@pytest.mark.integration
def test_two_empty_masks_are_a_perfect_score_in_benchbox() -> None:
    """MONAI has no value for two empty masks; benchbox's rule is agreement."""
    empty = np.zeros((8, 8), bool)
    assert sm.compute_hd95(empty, empty, (1, 1)) == 0.0
    assert sm.compute_nsd(empty, empty, (1, 1)) == 1.0
    assert sm.compute_dice(empty, empty) == 1.0


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
