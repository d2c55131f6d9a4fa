"""The YCbCr split of colour sources (benchbox.data.color)."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.data.color import merge_chroma, rgb_to_ycbcr, ycbcr_to_rgb


def test_roundtrip_is_exact():
    rgb = np.random.default_rng(0).random((17, 19, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)


def test_matches_pillow_jpeg_conversion():
    pil = pytest.importorskip("PIL.Image")
    rgb8 = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    ref = np.asarray(pil.fromarray(rgb8, "RGB").convert("YCbCr"), dtype=np.float64)
    ours = rgb_to_ycbcr(rgb8 / 255.0) * 255.0
    assert np.abs(ours - ref).max() <= 1.0  # Pillow rounds to 8 bits


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
