"""Whole-case datasets (benchbox.data.volumes): volumes, restore/save, sampling, and a
3D run through the runner; exercised through the case-folder reader."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.data.cases import open_cases
from benchbox.data.io import compare_geometry, read_image, save_prediction, write_image
from benchbox.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")


# -- end to end: volumes back onto the scan ---------------------------------------------
def test_volume_restore_and_saved_prediction_match_the_scan(make_cases, tmp_path):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32, fit="pad")
    (vol,) = ds.volumes("test")
    scan = read_image(root / vol.case_id / "flair.nii.gz")
    label = read_image(root / vol.case_id / "seg.nii.gz").array
    # Volume: preprocessed arrays, the scan's geometry and the label on the source grid.
    assert vol.a.shape == vol.b.shape == vol.mask.shape and vol.a.shape[1:] == (32, 32)
    assert vol.a.dtype == np.float32 and vol.a.min() >= 0 and vol.a.max() <= 1
    assert vol.reference == scan.geometry
    assert vol.extra["source_spacing"] == scan.spacing
    assert vol.source_mask.shape == label.shape
    assert sorted(np.unique(vol.source_mask)) == [0, 1, 2, 3]  # 0, 1, 2, 4 as indices
    # The axial axis of this sideways scan is storage axis 1 (2.5 mm between rows).
    assert vol.spacing == pytest.approx((0.9, 2.5, 1.1))

    restored = vol.restore(vol.mask)
    np.testing.assert_array_equal(restored, vol.source_mask)  # pad fit: exact
    out = save_prediction(vol, restored, tmp_path / "pred" / f"{vol.case_id}.nii.gz")
    saved = read_image(out)
    assert saved.geometry.shape == scan.geometry.shape
    assert compare_geometry(scan.geometry, saved.geometry, tolerance=1e-6) == []
    np.testing.assert_array_equal(saved.array, label)  # label values 0, 1, 2, 4 again
    with pytest.raises(DataError, match="does not match the scan"):
        save_prediction(vol, vol.mask, tmp_path / "wrong.nii.gz")


def test_volume_restore_after_resize_is_close(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=16)  # 2x downsampling
    for split in ("train", "val", "test"):
        for vol in ds.volumes(split):
            restored = vol.restore(vol.mask) > 0
            ref = vol.source_mask > 0
            dice = 2 * (restored & ref).sum() / (restored.sum() + ref.sum())
            assert dice > 0.8


def test_samples_follow_the_contract(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32)
    sample = ds.split("train")[0]
    assert sample["a"].shape == sample["b"].shape == (1, 32, 32)
    assert str(sample["a"].dtype) == "torch.float32"
    assert sample["mask"].shape == (32, 32) and str(sample["mask"].dtype) == "torch.int64"
    assert sample["spacing"].shape == (2,) and str(sample["spacing"].dtype) == "torch.float64"
    assert sample["case"] in ds.config()["splits"]["train"]
    ids = [s["case_id"] for s in ds.split("train")]
    assert len(ids) == len(set(ids))  # unique within the split
    cases = {split: {s["case"] for s in ds.split(split)} for split in ("train", "val", "test")}
    assert not cases["train"] & cases["test"] and not cases["val"] & cases["test"]
    assert ds.labels == {0: "background", 1: "necrosis", 2: "oedema", 3: "enhancing"}
    assert ds.eval_regions() == {"whole": (1, 2, 3), "core": (1, 3)}
    assert ds.num_classes == 4 and ds.name == "toy"
    assert ds.config()["label_values_present"] == [0, 1, 2, 4]


def test_target_makes_a_binary_task(make_cases, tmp_path):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32, fit="pad", target="core")
    assert ds.labels == {0: "background", 1: "core"} and ds.eval_regions() == {"core": (1,)}
    (vol,) = ds.volumes("test")
    label = read_image(root / vol.case_id / "seg.nii.gz").array
    np.testing.assert_array_equal(vol.source_mask, np.isin(label, [1, 4]))
    saved = read_image(save_prediction(vol, vol.restore(vol.mask), tmp_path / "p.nii.gz"))
    np.testing.assert_array_equal(saved.array, np.isin(label, [1, 4]))
    with pytest.raises(ConfigError, match="neither a region nor a label"):
        open_cases(str(root), config=str(cfg), image_size=32, target="liver")


def test_lesion_fraction_balances_training_slices(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32, lesion_fraction=0.5)
    flags = [bool(s["mask"].any()) for s in ds.split("train")]
    assert sum(flags) == len(flags) - sum(flags) > 0
    assert len(ds.split("test")) == ds.volumes("test")[0].a.shape[0]  # test: every slice
    again = open_cases(str(root), config=str(cfg), image_size=32, lesion_fraction=0.5)
    assert [s["case_id"] for s in again.split("train")] == [s["case_id"] for s in ds.split("train")]
    four = open_cases(str(root), config=str(cfg), image_size=32, slices_per_case=4)
    assert len(four.split("train")) == 4 * len(four.config()["splits"]["train"])


def test_intensities_use_the_brain_mask(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32, fit="pad", crop=False)
    vol = ds.volumes("test")[0]
    brain = read_image(root / vol.case_id / "brain.nii.gz").array > 0
    # Crop off and no resize: the canonical arrays are the source, flipped and permuted
    # (storage axis 1 runs inferior: it becomes axis 0, reversed).
    canon_brain = np.zeros_like(vol.mask)
    h, w = brain.shape[0], brain.shape[2]  # canonical rows/cols: storage axes 0 and 2
    assert vol.a.shape[0] == brain.shape[1]
    top, left = (32 - h) // 2, (32 - w) // 2
    canon_brain[:, top : top + h, left : left + w] = np.flip(brain.transpose(1, 0, 2), 0)
    assert not vol.a[canon_brain == 0].any()  # outside the brain: 0
    inside = vol.a[canon_brain > 0]
    assert inside.max() == 1.0 and np.mean(inside == 1.0) == pytest.approx(0.005, abs=0.004)


# -- through the runner --------------------------------------------------------------
@pytest.mark.integration
def test_3d_run_scores_whole_cases_on_the_scan_grid_and_saves_predictions(make_cases, tmp_path):
    import pandas as pd

    from benchbox import config as cfg_mod
    from benchbox.engine import runner

    root, cfg = make_cases(4)
    config = cfg_mod.resolve(
        None,
        None,
        {
            "dataset": f"cases:{root}",
            "data_opts": {"config": str(cfg)},
            "image_size": 32,
            "batch_size": 4,
            "epochs": 1,
            "fusion_epochs": 1,
            "warmup_steps": 0,
            "fusion_opts": {"width": 4, "depth": 2},
            "seg_opts": {"width": 4, "depth": 2},
            "save_predictions": True,
            "out": str(tmp_path / "out"),
        },
    )
    result = runner.run(config)
    ds = open_cases(str(root), config=str(cfg), image_size=32)
    test_cases = [v.case_id for v in ds.volumes("test")]
    per_case = pd.read_csv(result.files["per_case"])
    assert per_case["case_id"].tolist() == test_cases  # one row per case, not per slice
    for region in ("whole", "core"):
        assert {f"dice_{region}", f"hd95_{region}", f"nsd_{region}"} <= set(per_case.columns)
    assert per_case.notna().all().all()
    [saved_path] = sorted((result.run_dir / "predictions").glob("*.nii.gz"))
    scan = read_image(root / test_cases[0] / "flair.nii.gz")
    saved = read_image(saved_path)
    assert compare_geometry(scan.geometry, saved.geometry, tolerance=1e-6) == []
    assert set(np.unique(saved.array)) <= {0, 1, 2, 4}  # label values, not class indices
    assert result.leaderboard.name == "toy.csv"


def test_all_background_labels_fusion_only_runs_segmentation_refused(make_cases, tmp_path):
    from benchbox import config, errors
    from benchbox.engine import runner

    root, cfg = make_cases(4)
    for seg in root.glob("*/seg.nii.gz"):
        img = read_image(seg)
        write_image(np.zeros_like(img.array), seg, reference=img)
    cfg.write_text(cfg.read_text() + "\n[sampling]\nlesion_fraction = 0.5\n")
    ds = open_cases(str(root), config=str(cfg), image_size=32)
    assert ds.has_foreground("train") is False and ds.has_foreground("test") is False
    with pytest.raises(DataError, match="split 'train' holds no slice"):
        ds.split("train")  # lesion sampling on cases without lesions: nothing to sample

    def run_config(seg: str, **data_opts: str) -> config.RunConfig:
        opts = {"config": str(cfg), **data_opts}
        return config.resolve(None, None, {
            "dataset": f"cases:{root}", "data_opts": {"cases": opts}, "fusion": "mean",
            "seg": seg, "image_size": 32, "epochs": 1, "out": str(tmp_path / "out"),
        })  # fmt: skip

    # A fusion-only run needs no lesion: its training slices ignore the labels.
    prepared = runner.prepare(run_config("none"))
    every_slice = sum(v.a.shape[0] for v in prepared.dataset.volumes("train"))
    assert len(prepared.dataset.split("train")) == every_slice > 0
    assert prepared.dataset.config()["lesion_fraction"] is None
    # A segmentation run with no labelled voxel is refused before anything is trained.
    for opts in ({}, {"lesion_fraction": "0"}):
        with pytest.raises(errors.DataError, match=r"no training case holds a labelled voxel"):
            runner.prepare(run_config("attunet", **opts))
    assert not list((tmp_path / "out" / "runs").iterdir())


def test_has_foreground_follows_the_target(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32)
    assert ds.has_foreground("train") is True
    for seg in root.glob("*/seg.nii.gz"):  # keep only label 2 (oedema)
        img = read_image(seg)
        write_image(np.where(img.array == 2, 2, 0).astype(np.uint8), seg, reference=img)
    assert open_cases(str(root), config=str(cfg), target="oedema").has_foreground("train")
    enhancing = open_cases(str(root), config=str(cfg), target="enhancing")
    assert enhancing.has_foreground("train") is False


def test_every_volume_reader_takes_every_shared_option():
    """volume_options() picks VOLUME_OPTIONS from each reader's arguments, so each one
    must be a parameter of both readers and a declared dataset option."""
    import inspect

    from benchbox.data.cases import open_cases
    from benchbox.data.nifti import open_nifti
    from benchbox.data.options import OPTIONS
    from benchbox.data.volumes import VOLUME_OPTIONS, volume_options

    assert set(VOLUME_OPTIONS) <= set(OPTIONS)
    for reader in (open_nifti, open_cases):
        assert set(VOLUME_OPTIONS) <= set(inspect.signature(reader).parameters), reader
    given = dict.fromkeys(VOLUME_OPTIONS) | {"crop_margin": "3", "root": "ignored"}
    options = volume_options(given, {"crop_margin": 7, "fit": "pad"})
    assert options["crop_margin"] == 3 and options["fit"] == "pad"
