"""3D runs: the pre-flight's one-line refusals, and a tiny run on the 3D phantom.

The refusals stop before any work (no run folder); the run trains on patches, predicts
whole volumes with sliding windows, and records what a 3D row needs.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.engine import runner
from benchbox.engine.prepare import prepare
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.testing import tiny_run_settings

#: A tiny 3D run: 16x32x32 phantom volumes, one patch per case, one step per epoch.
TINY_3D = {
    "dataset": "synthetic3d",
    "patch_size": "16,32,32",
    "batch_size": 2,
    "patches_per_case": 1,
    "sw_batch_size": 2,
    "data_opts": {"synthetic3d": {"n_train": 2, "n_val": 1, "n_test": 1, "depth": 16}},
}


def tiny(out: Path, **overrides) -> cfg.RunConfig:
    return cfg.resolve(None, None, tiny_run_settings(out=str(out), **{**TINY_3D, **overrides}))


def _test_volume(image_size: int):
    """The first test volume of :data:`TINY_3D`'s phantom (a run passes its image size)."""
    from benchbox.data.synthetic3d import Synthetic3DDataset

    opts = TINY_3D["data_opts"]["synthetic3d"]
    return Synthetic3DDataset(image_size=image_size, **opts).volumes("test")[0]


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__="test-plugin", **hooks)


class _Flat(torch.nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x):
        return self.conv(x)


def test_a_3d_run_on_a_2d_dataset_is_refused_in_one_line(tmp_path):
    with pytest.raises(errors.ConfigError, match=r"3D run, but dataset 'synthetic' is 2D"):
        runner.run(tiny(tmp_path, dataset="synthetic"))
    assert not (tmp_path / "runs").exists()


def test_a_3d_only_dataset_or_segmenter_needs_a_patch_size(tmp_path):
    @hookimpl
    def register_segmenters(register):
        register("vol3d", _Flat, dims=(3,))

    registry = create_registry([_plugin(register_segmenters=register_segmenters)])
    with use_registry(registry), pytest.raises(errors.ConfigError, match="'vol3d' is 3D only"):
        prepare(tiny(tmp_path, patch_size="", seg="vol3d", dataset="synthetic"), registry)


def test_a_2d_segmenter_transform_or_loss_in_a_3d_run_is_refused(tmp_path):
    @hookimpl
    def register_segmenters(register):
        register("flat2d", _Flat)

    registry = create_registry([_plugin(register_segmenters=register_segmenters)])
    with use_registry(registry), pytest.raises(errors.ConfigError, match="'flat2d' is 2D only"):
        prepare(tiny(tmp_path, seg="flat2d"), registry)
    with pytest.raises(errors.ConfigError, match="--seg-opt spatial_dims is set by the run"):
        prepare(tiny(tmp_path, seg_opts={"spatial_dims": 2}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spacing": "0,1,1"}, r"--spacing must be three numbers > 0"),
        ({"patch_size": "16,32"}, r"--patch-size must be three whole numbers"),
        ({"patch_size": "", "spacing": "1,1,1"}, r"--spacing resamples volumes for a 3D run"),
    ],
)
def test_bad_3d_settings_are_one_line(tmp_path, overrides, message):
    with pytest.raises(errors.ConfigError, match=message):
        tiny(tmp_path, **overrides)


def test_a_patch_larger_than_a_volume_is_refused_before_training(tmp_path):
    with pytest.raises(errors.DataError, match=r"--patch-size 32x32x32 is larger than case"):
        runner.run(tiny(tmp_path, patch_size="32,32,32"))
    assert not list((tmp_path / "runs").iterdir())  # no run folder: nothing was started


def test_oversampling_refuses_a_training_volume_without_foreground(tmp_path):
    # With half the phantom's cases lesion-free, some training case has no lesion.
    opts = {"synthetic3d": {"n_train": 6, "n_val": 1, "n_test": 1, "depth": 16, "lesion_free": 0.5}}
    with pytest.raises(errors.DataError, match=r"training case 'train-\d+' holds no labelled"):
        prepare(tiny(tmp_path, data_opts=opts))
    prepare(tiny(tmp_path, data_opts=opts, oversample=0.0))  # random patches only: fine


@pytest.mark.integration
def test_tiny_3d_run_records_patches_windows_and_memory(tmp_path):
    result = runner.run(tiny(tmp_path))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["profile_input"] == {"per": "patch", "shape": [1, 1, 16, 32, 32]}
    assert metrics["throughput"]["infer_unit"] == "slices of whole volumes"
    assert metrics["throughput"]["peak_mem_mb"] > 0
    [row] = pd.read_csv(result.leaderboard).to_dict("records")
    assert row["patch_size"] == "16x32x32" and row["peak_mem_mb"] > 0
    assert row["image_size"] == 32  # the phantom's in-plane size: in effect in 3D too
    columns = list(pd.read_csv(result.leaderboard).columns)
    assert columns.index("peak_mem_mb") == columns.index("infer_img_s") + 1
    per_case = pd.read_csv(result.files["per_case"])
    assert per_case["case_id"].tolist() == ["test-000"]  # one row per volume
    assert per_case["dice_lesion"].notna().all()
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["patch_size"] == "16,32,32"

    # Predict: NIfTI on the phantom's own grid (its spacing in the header).
    import SimpleITK as sitk

    from benchbox.deploy.predict import predict_run

    predict_run(result.run_dir, "synthetic3d", tmp_path / "pred")
    seg = sitk.ReadImage(str(tmp_path / "pred" / "segmentations" / "test-000.nii.gz"))
    volume = _test_volume(config["image_size"])
    assert sitk.GetArrayFromImage(seg).shape == volume.a.shape
    assert seg.GetSpacing() == pytest.approx(tuple(reversed(volume.spacing)))

    # Export: one sliding window's graphs, spatial size dynamic, checked for parity.
    pytest.importorskip("onnxruntime")
    from benchbox.deploy.export import export_run

    report = export_run(result.run_dir, "onnx", test_images=1, rounds=1)
    assert report.patch_size == [16, 32, 32]
    pipeline = next(g for g in report.graphs if g.graph == "pipeline")
    assert pipeline.axes == "batch+size" and pipeline.checked_shape == (3, 1, 48, 64, 64)
    assert report.max_abs_diff <= 1e-4


@pytest.mark.parametrize(
    ("dataset", "patch", "applies"),
    [
        ("synthetic", "", True),
        ("cases:/x", "", True),  # 2D slices are resized to image_size
        ("synthetic3d", "16,32,32", True),  # the phantom's in-plane size
        ("cases:/x", "16,32,32", False),  # scans keep their own grid in 3D
        ("nifti:/x", "16,32,32", False),
    ],
)
def test_the_image_size_column_is_blank_where_scans_keep_their_grid(
    tmp_path, dataset, patch, applies
):
    from benchbox.engine.models import image_size_in_effect
    from benchbox.hooks.manager import get_registry

    config = tiny(tmp_path, dataset=dataset, patch_size=patch)
    entry = get_registry().get("dataset", config.dataset_name)
    assert image_size_in_effect(entry, config) is applies


@pytest.mark.integration
def test_a_2d_run_records_peak_memory_too(tmp_path):
    result = runner.run(cfg.resolve(None, None, tiny_run_settings(out=str(tmp_path))))
    [row] = pd.read_csv(result.leaderboard).to_dict("records")
    assert row["peak_mem_mb"] > 0 and pd.isna(row["patch_size"])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["profile_input"] == {"per": "image", "shape": [1, 1, 32, 32]}


@pytest.mark.integration
def test_a_3d_run_is_distilled_from_a_3d_teacher_only(tmp_path):
    teacher = runner.run(tiny(tmp_path / "teacher", epochs=1)).run_dir
    # distilled: the voxels' class probabilities and the fused slices, recorded
    result = runner.run(
        tiny(tmp_path / "student", seg="unet", teacher=str(teacher), distill=["logits", "fused"])
    )
    [row] = pd.read_csv(result.leaderboard).to_dict("records")
    assert row["teacher"] == teacher.name and row["patch_size"] == "16x32x32"
    assert row["distill"] == "logits+fused"
    # a 2D teacher for a 3D student, and the reverse: one line before any data
    two_d = runner.run(cfg.resolve(None, None, tiny_run_settings(out=str(tmp_path / "2d"))))
    with pytest.raises(errors.ConfigError, match=r"is a 2D run and this one is 3D"):
        prepare(tiny(tmp_path, teacher=str(two_d.run_dir), distill=["logits"]))
    with pytest.raises(errors.ConfigError, match=r"is a 3D run and this one is 2D"):
        prepare(
            cfg.resolve(
                None,
                None,
                tiny_run_settings(out=str(tmp_path), teacher=str(teacher), distill=["logits"]),
            )
        )

    # a distiller plugin that declares no 3D is refused in a 3D run
    @hookimpl
    def register_distillers(register):
        register("flat", lambda: None, task="segmentation")

    registry = create_registry([_plugin(register_distillers=register_distillers)])
    with (
        use_registry(registry),
        pytest.raises(errors.ConfigError, match=r"distiller 'flat' is 2D only; this is a 3D run"),
    ):
        prepare(tiny(tmp_path, teacher=str(teacher), distill=["flat"]), registry)
