"""Grey conversion and the YCbCr split of colour sources (benchbox.data.color)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from benchbox.data.color import (
    BT601_LUMA,
    channels,
    merge_chroma,
    rgb_to_grey,
    rgb_to_ycbcr,
    to_grey,
    ycbcr_to_rgb,
)
from benchbox.errors import DataError


def _exact_luma(rgb: np.ndarray) -> np.ndarray:
    """round(0.299 R + 0.587 G + 0.114 B), halves up, in exact rational arithmetic."""
    w = [Fraction(299, 1000), Fraction(587, 1000), Fraction(114, 1000)]
    flat = rgb.reshape(-1, 3).tolist()
    out = [int(r * w[0] + g * w[1] + b * w[2] + Fraction(1, 2)) for r, g, b in flat]
    return np.array(out, dtype=np.int64).reshape(rgb.shape[:-1])


def test_rgb_to_grey_rounds_the_exact_luma_including_halves():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(2000, 3)).astype(np.uint8)
    # Colours whose luma is exactly k + 0.5: (299 R + 587 G + 114 B) % 1000 == 500.
    ties = np.array([[0, 84, 28], [252, 0, 168], [7, 91, 35]], dtype=np.uint8)
    assert all((299 * int(r) + 587 * int(g) + 114 * int(b)) % 1000 == 500 for r, g, b in ties)
    rgb = np.concatenate([rgb, ties])
    grey = rgb_to_grey(rgb)
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, _exact_luma(rgb))
    assert rgb_to_grey(np.array([[255, 255, 255]], np.uint8)).tolist() == [255]
    # 16-bit stays 16-bit, rounded at its own depth.
    rgb16 = rng.integers(0, 65536, size=(500, 3)).astype(np.uint16)
    grey16 = rgb_to_grey(rgb16)
    assert grey16.dtype == np.uint16
    np.testing.assert_array_equal(grey16, _exact_luma(rgb16))
    # Float pixels have no bit depth: the luma is not rounded.
    assert rgb_to_grey(np.array([0.5, 0.25, 1.0])) == pytest.approx(
        0.5 * 0.299 + 0.25 * 0.587 + 0.114
    )


def test_rgb_to_grey_agrees_with_pillow_and_opencv_within_one_level():
    pil = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(1).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    ours = rgb_to_grey(rgb).astype(np.int64)
    refs = {"pillow": np.asarray(pil.fromarray(rgb, "RGB").convert("L"))}
    try:
        import cv2

        refs["opencv"] = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    except ImportError:
        pass
    for name, ref in refs.items():
        diff = np.abs(ours - ref.astype(np.int64))
        # Fixed-point weights: one level off near halves, on ~0.1 % of random colours.
        assert diff.max() <= 1, name
        assert (diff > 0).mean() < 0.005, name


@pytest.mark.data
def test_rgb_to_grey_equals_pillow_and_opencv_on_aanlib_pet(shared_data):
    pil = pytest.importorskip("PIL.Image")
    folder = shared_data("aanlib", "PET-MRI", "test", "PET")
    files = sorted(folder.glob("*.png"))
    assert files
    for path in files:
        rgb = np.asarray(pil.open(path).convert("RGB"))
        ours = rgb_to_grey(rgb)
        np.testing.assert_array_equal(ours, np.asarray(pil.open(path).convert("L")), str(path))
        try:
            import cv2
        except ImportError:
            continue
        bgr = cv2.imread(str(path))
        np.testing.assert_array_equal(ours, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), str(path))
        # CDDFuse's evaluator: float32 cvtColor, then np.round.
        cdd = np.round(cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY))
        np.testing.assert_array_equal(ours, cdd, str(path))


def test_channels_drop_alpha_and_see_equal_channels_as_grey():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, size=(6, 7), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(6, 7), dtype=np.uint8)
    as_rgb = np.stack([grey] * 3, -1)
    for array, n in ((grey, 1), (np.stack([grey, alpha], -1), 2), (as_rgb, 3)):
        out, colour = channels(array, n)
        assert not colour
        np.testing.assert_array_equal(out, grey)
    out, colour = channels(np.concatenate([as_rgb, alpha[..., None]], -1), 4)
    assert not colour  # grey stored as RGBA
    np.testing.assert_array_equal(out, grey)
    rgb = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    out, colour = channels(np.concatenate([rgb, alpha[..., None]], -1), 4)
    assert colour
    np.testing.assert_array_equal(out, rgb)  # alpha dropped, not composited
    np.testing.assert_array_equal(to_grey(rgb, 3), rgb_to_grey(rgb))
    with pytest.raises(DataError, match=r"x.png: 5 values per pixel"):
        channels(np.zeros((2, 2, 5)), 5, "x.png")


def test_ycbcr_matches_pillow_both_ways():
    pil = pytest.importorskip("PIL.Image")
    rgb8 = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    ycc8 = np.asarray(pil.fromarray(rgb8, "RGB").convert("YCbCr"))
    ours = rgb_to_ycbcr(rgb8 / 255.0) * 255.0
    assert np.abs(ours - ycc8).max() <= 1.0  # Pillow rounds to 8 bits
    # The inverse, against Pillow's own YCbCr -> RGB on the same 8-bit YCbCr (JPEG
    # centres 8-bit chroma on 128, benchbox's [0, 1] chroma on 0.5).
    back = np.asarray(pil.fromarray(ycc8, "YCbCr").convert("RGB"), dtype=np.float64)
    ycc = ycc8 / 255.0
    ycc[..., 1:] = (ycc8[..., 1:] - 128.0) / 255.0 + 0.5
    assert np.abs(ycbcr_to_rgb(ycc) * 255.0 - back).max() <= 1.0


def test_primaries_and_grey():
    assert rgb_to_ycbcr(np.array([1.0, 1.0, 1.0])) == pytest.approx([1.0, 0.5, 0.5])
    assert rgb_to_ycbcr(np.array([1.0, 0.0, 0.0])) == pytest.approx([0.299, 0.5 - 0.168736, 1.0])
    grey = np.full((4, 4), 0.3)
    np.testing.assert_allclose(merge_chroma(grey, np.full((2, 4, 4), 0.5)), 0.3, atol=1e-12)


def test_merge_chroma_restores_the_colour_source():
    rgb = np.random.default_rng(2).random((8, 9, 3))
    ycc = rgb_to_ycbcr(rgb)
    out = merge_chroma(ycc[..., 0], np.moveaxis(ycc[..., 1:], -1, 0))
    np.testing.assert_allclose(out, rgb, atol=1e-12)
    with pytest.raises(ValueError, match="chroma"):
        merge_chroma(ycc[..., 0], ycc[..., 1:])


def test_luma_weights_are_written_once():
    root = Path(__file__).resolve().parents[2]
    hits = [
        str(path.relative_to(root))
        for folder in ("benchbox", "plugins")
        for path in (root / folder).rglob("*.py")
        if "0.587" in path.read_text(encoding="utf-8")
    ]
    assert hits == [str(Path("benchbox", "data", "color.py"))]
    assert sum(BT601_LUMA) == pytest.approx(1.0)


@pytest.mark.data
def test_spect_fixture_roundtrip(shared_data):
    from benchbox.data.io import read_image

    img = read_image(shared_data("fixtures", "ifcnn") / "010_SPECT-Tc.tif")
    assert img.components == 3
    rgb = img.array / 255.0
    ycc = rgb_to_ycbcr(rgb)
    assert ycc.min() >= -1e-9 and ycc.max() <= 1 + 1e-9
    back = merge_chroma(ycc[..., 0], np.moveaxis(ycc[..., 1:], -1, 0))
    np.testing.assert_allclose(back, rgb, atol=1e-9)
