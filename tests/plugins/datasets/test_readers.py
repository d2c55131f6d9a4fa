"""The dataset plugins ``pairs``, ``nifti`` and ``cases``: registration, bad input through
``benchbox run``, and the real images of BENCHBOX_DATA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbox import get_dataset, list_datasets
from benchbox.data.io import Geometry, compare_geometry, read_image, save_prediction, write_image

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_readers_are_registered_with_the_run_parameters():
    entries = {e.name: e for e in list_datasets()}
    for name in ("pairs", "nifti", "cases"):
        params = {p.name for p in entries[name].parameters}
        assert {"root", "image_size", "seed", "resample"} <= params, name
        assert entries[name].provider.distribution == "benchbox"


# -- bad input: one line naming the culprit, exit 1, no leaderboard row ------------------
CONFIG = """
fuse = ["A", "B"]
label = "seg.nii.gz"
[modalities]
A = "a.nii.gz"
B = "b.nii.gz"
[labels]
0 = "background"
1 = "lesion"
[split]
val_fraction = 0.25
test_fraction = 0.25
"""
GEOM = Geometry((6, 32, 32), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))


def _write_cases(root: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        lab = np.zeros(GEOM.shape, np.uint8)
        lab[2:4, 10:20, 10:20] = 1
        for key, arr in (
            ("a", rng.random(GEOM.shape)),
            ("b", rng.random(GEOM.shape)),
            ("seg", lab),
        ):
            write_image(
                np.asarray(arr, dtype=lab.dtype if key == "seg" else np.float32),
                root / f"case{i}" / f"{key}.nii.gz",
                reference=GEOM,
            )


def _missing_modality(root: Path) -> str:
    (root / "case1" / "b.nii.gz").unlink()
    return "case1"


def _corrupt(root: Path) -> str:
    path = root / "case2" / "a.nii.gz"
    path.write_bytes(path.read_bytes()[:300])
    return "case2/a.nii.gz"


def _bad_labels(root: Path) -> str:
    path = root / "case3" / "seg.nii.gz"
    img = read_image(path)
    write_image(img.array + 5, path, reference=img)
    return "case3/seg.nii.gz"


def _empty(root: Path) -> str:
    for case in root.iterdir():
        for f in case.iterdir():
            f.unlink()
        case.rmdir()
    return "empty dataset"


def _mixed(root: Path) -> str:
    path = root / "case0" / "b.nii.gz"
    write_image(read_image(path).array[0], path, spacing=(1.0, 1.0))
    return "2D and 3D files mixed"


def _geometry(root: Path) -> str:
    path = root / "case1" / "b.nii.gz"
    img = read_image(path)
    write_image(img.array, path, spacing=(3.0, 1.0, 1.0))
    return "case 'case1'"


@pytest.mark.integration
@pytest.mark.parametrize(
    "break_it", [_missing_modality, _corrupt, _bad_labels, _empty, _mixed, _geometry]
)
def test_bad_input_stops_the_run(tmp_path, capsys, break_it):
    from benchbox.cli import main

    root = tmp_path / "data"
    _write_cases(root)
    culprit = break_it(root)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    args = [
        "--dataset",
        f"cases:{root}",
        "--data-opt",
        f"config={cfg}",
        "--fusion",
        "dual",
        "--seg",
        "attunet",
        "--image-size",
        "32",
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args])
    assert exit_info.value.code == 1
    text = " ".join(capsys.readouterr().err.split())
    assert "error:" in text and culprit in text and "Traceback" not in text
    assert not list(out.glob("leaderboards/*.csv"))


# -- the real images ----------------------------------------------------------------------
@pytest.mark.data
def test_aanlib_ct_mri(shared_data):
    root = shared_data("aanlib", "CT-MRI")
    ds = get_dataset("pairs", root=str(root), image_size=64, seed=0)
    assert ds.name == "aanlib-ct-mri" and ds.labels is None
    assert ds.modalities == ("CT", "MRI")
    # 20% of the 160 training pairs held out for validation (the default val_fraction)
    assert {s: len(ds.split(s)) for s in ("train", "val", "test")} == {
        "train": 128,
        "val": 32,
        "test": 24,
    }
    s = ds.split("test")[0]
    assert s["a"].shape == (1, 64, 64) and float(s["a"].max()) <= 1.0


@pytest.mark.data
@pytest.mark.parametrize("pair", ["PET-MRI", "SPECT-MRI"])
def test_aanlib_colour_pairs(shared_data, pair):
    ds = get_dataset("pairs", root=str(shared_data("aanlib", pair)), image_size=64, seed=0)
    assert ds.color_source == "a" and ds.modalities[1] == "MRI"
    assert ds.split("test")[0]["a_chroma"].shape == (2, 64, 64)
    assert len(ds.split("test")) == 24


@pytest.mark.data
def test_brats_case_folders(shared_data, tmp_path, monkeypatch):
    root = shared_data("brats2015")
    ds = get_dataset(
        "cases", root=str(root), config="configs/brats2015.toml", image_size=64, seed=0
    )
    assert ds.name == "brats2015" and ds.modalities == ("FLAIR", "T1c")
    cfg = ds.config()
    splits = cfg["splits"]
    assert sorted(c for ids in splits.values() for c in ids) == sorted(
        p.name for p in root.glob("brats_*")
    )
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert cfg["label_values_present"] == [0, 1, 2, 3, 4]
    assert ds.eval_regions()["whole-tumour"] == (1, 2, 3, 4)
    train = ds.split("train")
    lesion = sum(bool(s["mask"].any()) for s in train)
    assert lesion == len(train) - lesion  # lesion_fraction = 0.5 in the config
    (vol,) = ds.volumes("test")
    flair = root / vol.case_id / "Flair_subtrMeanDivStd.nii.gz"
    assert compare_geometry(read_image(flair).geometry, vol.reference, 1e-6) == []
    truth = read_image(root / vol.case_id / "OTMultiClass.nii.gz").array
    np.testing.assert_array_equal(vol.source_mask, truth.astype(np.int64))
    restored = vol.restore(vol.mask) > 0
    dice = 2 * (restored & (truth > 0)).sum() / (restored.sum() + (truth > 0).sum())
    assert dice > 0.9  # the 64-pixel grid itself loses a little
    saved = read_image(save_prediction(vol, vol.restore(vol.mask), tmp_path / "p.nii.gz"))
    assert compare_geometry(read_image(flair).geometry, saved.geometry, 1e-6) == []
    # Built again from the cache: no case is preprocessed (a check on what ran, not on
    # a wall-clock time, which a loaded machine can stretch).
    from benchbox.data import volumes

    def no_preprocessing(*args, **kwargs):
        raise AssertionError("a cached case was preprocessed again")

    monkeypatch.setattr(volumes, "preprocess_case", no_preprocessing)
    again = get_dataset("cases", root="brats2015", image_size=64, seed=0)  # shipped config
    assert again.config()["splits"] == splits
