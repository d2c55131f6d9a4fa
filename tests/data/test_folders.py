"""Reading rules of result folders (benchbox.data.folders): colour, alpha, NaN labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from benchbox.data.folders import read_fusion_image, read_labels
from benchbox.data.io import write_image
from benchbox.errors import DataError


def _exact_grey(rgb: np.ndarray) -> np.ndarray:
    i = rgb.astype(np.int64)
    return (299 * i[..., 0] + 587 * i[..., 1] + 114 * i[..., 2] + 500) // 1000


def test_colour_fusion_images_become_8_bit_grey_alpha_dropped(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(20, 24, 4), dtype=np.uint8)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(
        read_fusion_image(tmp_path / "rgba.png") * 255, _exact_grey(rgba[..., :3])
    )
    grey = rng.integers(0, 256, size=(20, 24), dtype=np.uint8)
    PILImage.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "grey_rgb.png")
    PILImage.fromarray(np.stack([grey, grey // 2], -1), "LA").save(tmp_path / "la.png")
    for name in ("grey_rgb.png", "la.png"):
        np.testing.assert_array_equal(read_fusion_image(tmp_path / name) * 255, grey)


def _gray(seed: int, shape=(64, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    x = ndimage.gaussian_filter(rng.random(shape), 2)
    return np.round(255 * (x - x.min()) / (x.max() - x.min())).astype(np.uint8)


def test_colour_becomes_rounded_bt601_luma_and_16_bit_is_scaled(tmp_path: Path) -> None:
    rgb = np.stack([_gray(2), _gray(3), _gray(4)], axis=-1)
    write_image(rgb, tmp_path / "rgb.png")
    i = rgb.astype(np.int64)  # BT.601 luma rounded to 8 bits, halves up, in integers
    expected = (299 * i[..., 0] + 587 * i[..., 1] + 114 * i[..., 2] + 500) // 1000 / 255
    np.testing.assert_allclose(read_fusion_image(tmp_path / "rgb.png"), expected, atol=1e-12)
    wide = _gray(5).astype(np.uint16) * 257
    write_image(wide, tmp_path / "wide.png")
    np.testing.assert_allclose(read_fusion_image(tmp_path / "wide.png"), _gray(5) / 255.0)


def test_bad_fusion_images_are_named(tmp_path: Path) -> None:
    write_image(np.full((16, 16), 2.0, np.float32), tmp_path / "hot.nii.gz")
    with pytest.raises(DataError, match=r"hot\.nii\.gz: a float image must lie in \[0, 1\]"):
        read_fusion_image(tmp_path / "hot.nii.gz")
    write_image(np.zeros((4, 16, 16), np.uint8), tmp_path / "vol.nii.gz")
    with pytest.raises(DataError, match=r"vol\.nii\.gz: fusion images must be 2D"):
        read_fusion_image(tmp_path / "vol.nii.gz")


def test_nan_in_a_float_label_file_is_refused_like_a_fraction(tmp_path):
    labels = np.zeros((4, 8, 8), np.float32)
    labels[1:3, 2:5, 2:5] = 1
    write_image(labels, tmp_path / "ok.nii.gz")
    arr, _ = read_labels(tmp_path / "ok.nii.gz")
    assert arr.dtype == np.int64 and int(arr.sum()) == 18
    for name, bad in (("half.nii.gz", 0.5), ("nan.nii.gz", np.nan), ("all_nan.nrrd", np.nan)):
        broken = np.full_like(labels, np.nan) if name.startswith("all") else labels.copy()
        broken[0, 0, 0] = bad
        write_image(broken, tmp_path / name)
    with pytest.raises(DataError, match=r"half\.nii\.gz: labels must be integers; .*fractional"):
        read_labels(tmp_path / "half.nii.gz")
    with pytest.raises(DataError, match=r"nan\.nii\.gz: labels must be integers; .* NaN values"):
        read_labels(tmp_path / "nan.nii.gz")
    with pytest.raises(DataError, match=r"all_nan\.nrrd: labels must be integers; .* NaN"):
        read_labels(tmp_path / "all_nan.nrrd")


def _cddfuse_grey(path: Path) -> np.ndarray:
    """CDDFuse's reader: OpenCV in float32, then np.round (Pillow's L without OpenCV)."""
    try:
        import cv2
    except ImportError:
        with PILImage.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.float64)
    bgr = cv2.imread(str(path)).astype(np.float32)
    return np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).astype(np.float64)


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
    """Mutual information of two integer images from their contingency table, in nats
    (what sklearn.metrics.mutual_info_score computes)."""
    _, xi = np.unique(x.ravel(), return_inverse=True)
    _, yi = np.unique(y.ravel(), return_inverse=True)
    joint = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(joint, (xi, yi), 1)
    p = joint / joint.sum()
    outer = p.sum(1, keepdims=True) @ p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / outer[nz])).sum())


@pytest.mark.data
def test_mi_on_colour_pet_sources_equals_the_cddfuse_evaluator(shared_data, tmp_path):
    from benchbox.metrics.fusion import compute_mi

    root = shared_data("aanlib", "PET-MRI", "test")
    pet_files = sorted((root / "PET").glob("*.png"))[:6]
    assert pet_files
    for pet in pet_files:
        mri = root / "MRI" / pet.name
        a8, b8 = _cddfuse_grey(pet), _cddfuse_grey(mri)
        fused_path = tmp_path / pet.name  # a fused image: the brighter source per pixel
        PILImage.fromarray(np.maximum(a8, b8).astype(np.uint8)).save(fused_path)
        f8 = _cddfuse_grey(fused_path)
        expected = _mi_nats(f8, a8) + _mi_nats(f8, b8)
        images = [read_fusion_image(p) for p in (fused_path, pet, mri)]
        ours = compute_mi(*images) * np.log(2)  # bits -> nats
        assert ours == pytest.approx(expected, rel=1e-9), pet.name
