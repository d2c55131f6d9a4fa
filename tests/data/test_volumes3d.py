"""Volumes for 3D runs: the scan's grid kept or resampled to a spacing, and back; the 3D
phantom."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.data.cases import open_cases
from benchbox.data.io import compare_geometry, read_image
from benchbox.data.synthetic3d import Synthetic3DDataset
from benchbox.errors import ConfigError


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_fit_none_keeps_the_grid_and_restores_exactly(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), fit="none")
    for vol in ds.volumes("train"):
        assert vol.spacing == pytest.approx((0.9, 2.5, 1.1))  # the scan's own, canonical
        np.testing.assert_array_equal(vol.restore(vol.mask), vol.source_mask)


def test_a_target_spacing_resamples_and_probabilities_restore_to_the_scan(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), fit="none", spacing="2,2,2")
    for vol in ds.volumes("train"):
        assert vol.spacing == pytest.approx((2.0, 2.0, 2.0), rel=0.1)
        assert vol.a.shape == vol.mask.shape
        # Class scores (D, K, H, W) go back trilinearly, the argmax taken on the scan.
        k = int(vol.mask.max()) + 1
        scores = np.stack([(vol.mask == c) for c in range(k)], axis=1).astype(np.float32)
        restored = vol.restore(scores)
        assert restored.shape == vol.source_mask.shape
        assert _dice(restored > 0, vol.source_mask > 0) > 0.8


def test_spacing_needs_the_volume_grid(make_cases):
    root, cfg = make_cases(4)
    with pytest.raises(ConfigError, match="spacing resamples volumes on their own grid"):
        open_cases(str(root), config=str(cfg), spacing="2,2,2")


@pytest.mark.integration
def test_3d_run_on_case_folders_saves_predictions_on_the_scan(make_cases, tmp_path):
    import pandas as pd

    from benchbox import config
    from benchbox.engine import runner
    from benchbox.testing import tiny_run_settings

    root, cfg = make_cases(4)
    settings = tiny_run_settings(
        out=str(tmp_path / "out"),
        dataset=f"cases:{root}",
        data_opts={"config": str(cfg)},
        patch_size="16,16,16",
        spacing="1,1,1",
        sw_batch_size=8,
        batch_size=2,
        patches_per_case=1,
        save_predictions=True,
    )
    result = runner.run(config.resolve(None, None, settings))
    [saved] = sorted((result.run_dir / "predictions").glob("*.nii.gz"))
    case = saved.name.removesuffix(".nii.gz")
    scan = read_image(root / case / "flair.nii.gz")
    assert compare_geometry(scan.geometry, read_image(saved).geometry, tolerance=1e-6) == []
    per_case = pd.read_csv(result.files["per_case"])
    assert per_case["case_id"].tolist() == [case]
    [row] = pd.read_csv(result.leaderboard).to_dict("records")
    assert row["spacing"] == "1x1x1"

    # benchbox predict applies the 3D run to new scans: NIfTI on each scan's geometry.
    from benchbox.deploy.predict import predict_run

    report = predict_run(result.run_dir, f"cases:{root}", tmp_path / "pred", split="all")
    assert report.cases == 4 and report.images > 0
    for path in report.files["segmentations"]:
        scan = read_image(root / path.name.removesuffix(".nii.gz") / "flair.nii.gz")
        written = read_image(path)
        assert compare_geometry(scan.geometry, written.geometry, tolerance=1e-6) == []
        assert set(np.unique(written.array)) <= {0, 1, 2, 4}


def test_the_3d_phantom_is_seeded_and_drawn_at_the_spacing_asked():
    one, two = Synthetic3DDataset(image_size=32, depth=16), Synthetic3DDataset(32, 16)
    for x, y in zip(one.volumes("test"), two.volumes("test"), strict=True):
        np.testing.assert_array_equal(x.a, y.a)
        assert x.a.shape == (16, 32, 32) and x.mask is not None and x.mask.any()
    fine = Synthetic3DDataset(spacing=(5.5, 5.5, 5.5), n_train=1)
    assert fine.volumes("train")[0].a.shape == (30, 40, 40)
    assert len(fine.split("train")) == 30  # 2D runs take its slices
