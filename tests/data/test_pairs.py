"""Registered 2D pairs in modality folders (benchbox.data.pairs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from benchbox.data.color import merge_chroma, rgb_to_grey, rgb_to_ycbcr
from benchbox.data.io import read_image, write_image
from benchbox.data.pairs import open_pairs
from benchbox.errors import DataError, DataWarning

pytestmark = pytest.mark.usefixtures("isolated_cache")


def write_pairs(
    root: Path,
    mods: tuple[str, str] = ("CT", "MRI"),
    n: dict[str, int] | None = None,
    colour: str | None = None,
    mask: bool = False,
    size: int = 40,
) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (n or {"train": 10, "test": 3}).items():
        for i in range(count):
            name = f"{split[:2]}{i:03d}.png"
            for mod in mods:
                shape = (size, size, 3) if mod == colour else (size, size)
                write_image(
                    rng.integers(0, 256, size=shape, dtype=np.uint8), root / split / mod / name
                )
            if mask:
                m = np.zeros((size, size), np.uint8)
                m[5:15, 8:20] = 255
                write_image(m, root / split / "mask" / name)
    return root


def test_greyscale_pairs(tmp_path):
    root = write_pairs(tmp_path / "atlas" / "CT-MRI")
    ds = open_pairs(str(root), image_size=32)
    assert ds.name == "atlas-ct-mri" and ds.modalities == ("CT", "MRI")
    assert ds.labels is None and ds.color_source is None
    counts = ds.config()["counts"]
    assert counts == {"train": 8, "val": 2, "test": 3}  # val_fraction 0.2 of 10
    s = ds.split("test")[0]
    assert s["a"].shape == (1, 32, 32) and str(s["a"].dtype) == "torch.float32"
    assert s["case_id"] == "te000" and "a_chroma" not in s
    assert s["spacing"].tolist() == pytest.approx([40 / 32, 40 / 32])
    native = open_pairs(str(root))  # image_size None: the images' own size
    src = read_image(root / "test" / "MRI" / "te000.png").array / 255.0
    np.testing.assert_allclose(native.split("test")[0]["b"][0].numpy(), src, atol=1e-6)


def test_val_is_a_fixed_share_of_train(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI", n={"train": 20, "test": 2})
    ds = open_pairs(str(root), image_size=32, val_fraction=0.25, seed=0)
    val = {s["case_id"] for s in ds.split("val")}
    train = {s["case_id"] for s in ds.split("train")}
    assert len(val) == 5 and len(train) == 15 and not val & train
    other_seed = open_pairs(str(root), image_size=32, val_fraction=0.25, seed=7)
    assert {s["case_id"] for s in other_seed.split("val")} == val  # run seed: same split
    assert ds.config()["val_cases"] == sorted(val)
    with pytest.raises(DataError, match="holds no pair"):
        open_pairs(str(root), image_size=32, val_fraction=0).split("val")


def test_val_is_the_case_level_split_every_reader_uses(tmp_path):
    from benchbox.data.splits import assign_splits

    root = write_pairs(tmp_path / "CT-MRI", n={"train": 12, "test": 2})
    ds = open_pairs(str(root), image_size=32, split_seed=3)
    expected = assign_splits([f"tr{i:03d}" for i in range(12)], 0.2, 0.0, seed=3)
    assert ds.config()["val_cases"] == expected["val"] and len(expected["val"]) == 2
    assert sorted(s["case_id"] for s in ds.split("train")) == expected["train"]


def test_colour_source_is_split_into_luma_and_chroma(tmp_path):
    root = write_pairs(tmp_path / "PET-MRI", mods=("PET", "MRI"), colour="PET")
    ds = open_pairs(str(root))
    assert ds.modalities == ("PET", "MRI") and ds.color_source == "a"
    s = ds.split("test")[0]
    path = root / "test" / "PET" / f"{s['case_id']}.png"
    rgb = read_image(path).array / 255.0
    # Y is the 8-bit grey image of the field's tools: Pillow's convert("L") here.
    with PILImage.open(path) as im:
        grey8 = np.asarray(im.convert("L"))
    np.testing.assert_array_equal(np.rint(s["a"][0].numpy() * 255), grey8)
    np.testing.assert_allclose(s["a"][0].numpy(), grey8 / 255.0, atol=1e-7)
    ycc = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(s["a_chroma"].numpy(), np.moveaxis(ycc[..., 1:], -1, 0), atol=1e-6)
    # Fusing Y with itself and putting the chroma back gives the colour image, within
    # the half grey level by which Y was rounded.
    back = merge_chroma(s["a"][0].numpy(), s["a_chroma"].numpy())
    np.testing.assert_allclose(back, rgb, atol=0.5 * 1.403 / 255)


def _grey_as(grey: np.ndarray, mode: str) -> np.ndarray:
    """A grey image stored as RGB or RGBA (an opaque alpha) or grey+alpha."""
    alpha = [np.full_like(grey, 255)] if mode.endswith("A") else []
    planes = [grey] * (3 if mode.startswith("RGB") else 1)
    return np.stack(planes + alpha, -1)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_grey_images_stored_with_colour_channels_are_grey(tmp_path, mode):
    root = write_pairs(tmp_path / "CT-MRI", n={"train": 6, "test": 3})
    for path in sorted((root / "test" / "CT").iterdir()):
        grey = read_image(path).array
        PILImage.fromarray(_grey_as(grey, mode), mode).save(path)
        assert read_image(path).components == len(mode)
    ds = open_pairs(str(root), val_fraction=0)
    assert ds.color_source is None and ds.config()["colour"] == {"a": False, "b": False}
    s = ds.split("test")[0]
    assert "a_chroma" not in s
    src = np.asarray(PILImage.open(root / "test" / "CT" / f"{s['case_id']}.png").convert("L"))
    np.testing.assert_allclose(s["a"][0].numpy(), src / 255.0, atol=1e-7)


def test_colour_and_grey_images_of_one_modality_mix_with_neutral_chroma(tmp_path):
    # One RGBA colour image among greyscale ones, in train only: the modality is colour,
    # every greyscale image (test split included) gets the chroma of a grey pixel.
    root = write_pairs(tmp_path / "CT-MRI", n={"train": 6, "test": 3})
    rgba = np.random.default_rng(5).integers(0, 256, size=(40, 40, 4), dtype=np.uint8)
    path = root / "train" / "CT" / "tr002.png"
    PILImage.fromarray(rgba, "RGBA").save(path)
    # Before: silently. Now the colour file is named, from the cache too.
    expected = (
        f"{root}: modality CT is read as colour because 1 of its 9 images is colour "
        "(train/CT/tr002.png); its 8 greyscale images get neutral chroma"
    )
    for _ in range(2):
        with pytest.warns(DataWarning) as caught:
            ds = open_pairs(str(root), val_fraction=0)
        assert [str(w.message).split(" (save")[0] for w in caught] == [expected]
    assert ds.color_source == "a"
    test = ds.split("test")[0]
    np.testing.assert_array_equal(test["a_chroma"].numpy(), 0.5)
    by_id = {s["case_id"]: s for s in ds.split("train")}
    # The alpha channel is dropped, not composited (as OpenCV and Pillow read it).
    expected = rgb_to_grey(rgba[..., :3]) / 255.0
    np.testing.assert_allclose(by_id["tr002"]["a"][0].numpy(), expected, atol=1e-7)
    np.testing.assert_array_equal(by_id["tr000"]["a_chroma"].numpy(), 0.5)
    back = merge_chroma(by_id["tr000"]["a"][0].numpy(), by_id["tr000"]["a_chroma"].numpy())
    np.testing.assert_allclose(back[..., 0], by_id["tr000"]["a"][0].numpy(), atol=1e-6)


def test_an_image_with_five_channels_is_named(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI", n={"train": 3, "test": 1})
    import SimpleITK as sitk

    bad = root / "train" / "CT" / "tr001.mha"
    (root / "train" / "CT" / "tr001.png").unlink()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((40, 40, 5), np.uint8), isVector=True), bad)
    with pytest.raises(DataError, match=r"tr001.mha: 5 values per pixel"):
        open_pairs(str(root))


def test_masks(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI", mask=True)
    ds = open_pairs(str(root), image_size=20)
    assert ds.labels == {0: "background", 1: "foreground"}
    m = ds.split("test")[0]["mask"]
    assert str(m.dtype) == "torch.int64" and set(m.unique().tolist()) == {0, 1}
    assert int(m.sum()) == 5 * 6  # 10 x 12 pixels at half size


def test_has_foreground(tmp_path):
    assert open_pairs(str(write_pairs(tmp_path / "a" / "CT-MRI"))).has_foreground("train") is None
    root = write_pairs(tmp_path / "b" / "CT-MRI", mask=True)
    assert open_pairs(str(root), image_size=20).has_foreground("train") is True
    for path in root.glob("*/mask/*.png"):
        write_image(np.zeros((40, 40), np.uint8), path)
    ds = open_pairs(str(root), image_size=20)
    assert ds.has_foreground("train") is False and ds.has_foreground("val") is False


def test_modality_choice(tmp_path):
    root = write_pairs(tmp_path / "three", mods=("CT", "MRI", "PET"))
    with pytest.raises(DataError, match=r"3 modality folders.*modalities=A,B"):
        open_pairs(str(root))
    ds = open_pairs(str(root), modalities="MRI,PET", image_size=32)
    assert ds.modalities == ("MRI", "PET") and ds.name.endswith("-three")


# -- bad input ----------------------------------------------------------------------------
def test_missing_partner_file(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI")
    (root / "train" / "MRI" / "tr004.png").unlink()
    with pytest.raises(DataError, match=r"train/CT/tr004\.png: missing modality file .*MRI/tr004"):
        open_pairs(str(root))


def test_size_mismatch_and_resample(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI")
    write_image(np.zeros((30, 30), np.uint8), root / "test" / "MRI" / "te001.png")
    with pytest.raises(DataError, match=r"MRI/te001\.png: size \(30, 30\) does not match"):
        open_pairs(str(root), image_size=32)
    ds = open_pairs(str(root), image_size=32, resample=True)
    assert ds.split("test")[1]["b"].shape == (1, 32, 32)


def test_bad_mask_values(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI", mask=True)
    m = np.zeros((40, 40), np.uint8)
    m[0, :3] = [1, 2, 255]
    write_image(m, root / "train" / "mask" / "tr002.png")
    with pytest.raises(DataError, match=r"mask/tr002\.png: unexpected label values \[2\]"):
        open_pairs(str(root))


def test_3d_file_among_pairs(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI")
    (root / "train" / "CT" / "tr001.png").unlink()
    write_image(np.zeros((3, 40, 40), np.float32), root / "train" / "CT" / "tr001.nii.gz")
    with pytest.raises(DataError, match=r"CT/tr001\.nii\.gz: a 3D image .*2D and 3D files mixed"):
        open_pairs(str(root))


def test_empty_and_missing_folders(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI")
    for f in (root / "test" / "CT").iterdir():
        f.unlink()
    for f in (root / "test" / "MRI").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test: empty dataset"):
        open_pairs(str(root))
    with pytest.raises(DataError, match="no such folder"):
        open_pairs(str(tmp_path / "nowhere"))
    only_train = write_pairs(tmp_path / "x" / "CT-MRI", n={"train": 3})
    with pytest.raises(DataError, match=r"CT-MRI/test: no such folder"):
        open_pairs(str(only_train))


# -- real fixtures ------------------------------------------------------------------------
@pytest.mark.data
def test_ifcnn_fixtures_as_pairs(shared_data, tmp_path):
    src = shared_data("fixtures", "ifcnn")
    root = tmp_path / "ifcnn" / "SPECT-MRI"
    for split in ("train", "test"):
        for mod, name in (("SPECT", "010_SPECT-Tc.tif"), ("MRI", "010_MR-T2.tif")):
            (root / split / mod).mkdir(parents=True)
            (root / split / mod / "010.tif").symlink_to(src / name)
    ds = open_pairs(str(root), val_fraction=0, image_size=128)
    assert ds.color_source == "a" and ds.modalities == ("SPECT", "MRI")
    s = ds.split("test")[0]
    assert s["a"].shape == (1, 128, 128) and s["a_chroma"].shape == (2, 128, 128)
    assert float(s["a"].min()) >= 0 and float(s["a"].max()) <= 1
    grey = tmp_path / "ifcnn" / "multi"
    for i in range(1, 9):
        split = "test" if i > 6 else "train"
        for k in (1, 2):
            (grey / split / f"S{k}").mkdir(parents=True, exist_ok=True)
            (grey / split / f"S{k}" / f"c{i:02d}.tif").symlink_to(src / f"c{i:02d}_{k}.tif")
    ds = open_pairs(str(grey), image_size=64)
    assert ds.config()["counts"] == {"train": 5, "val": 1, "test": 2}
    assert ds.name == "ifcnn-multi" and ds.modalities == ("S1", "S2")


def test_hidden_files_are_skipped_as_documented(tmp_path):
    root = write_pairs(tmp_path / "CT-MRI", n={"train": 3, "test": 1})
    (root / "train" / "CT" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "train" / "CT" / "._tr000.png").write_bytes(b"not a png")  # a macOS copy
    (root / "train" / ".hidden").mkdir()
    ds = open_pairs(str(root), val_fraction=0)
    assert ds.config()["counts"]["train"] == 3
    import benchbox.data.pairs as pairs

    assert "Hidden files and folders" in (pairs.__doc__ or "")
