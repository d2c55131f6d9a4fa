"""benchbox.metrics.ssim against scikit-image's structural_similarity, to within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from benchbox.metrics import ssim as bb_ssim

SKIMAGE = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1}


def _pair(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image and a noisy, shifted copy: SSIM well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random(shape), 2)
    x = (x - x.min()) / (x.max() - x.min())
    y = np.clip(np.roll(x, 1, axis=1) + 0.1 * rng.standard_normal(shape), 0, 1)
    return x, y


@pytest.mark.parametrize(("shape", "seed"), [((32, 32), 0), ((64, 48), 1), ((11, 11), 2)])
def test_ssim_matches_skimage(shape: tuple[int, int], seed: int) -> None:
    x, y = _pair(shape, seed)
    expected = structural_similarity(x, y, **SKIMAGE)
    got = bb_ssim.ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])
    assert got.shape == (1,)
    assert abs(float(got) - expected) < 1e-5


def test_ssim_float32_matches_skimage() -> None:
    x, y = _pair((64, 64), 3)
    expected = structural_similarity(x, y, **SKIMAGE)
    got = bb_ssim.ssim(
        torch.from_numpy(x).float()[None, None], torch.from_numpy(y).float()[None, None]
    )
    assert abs(float(got) - expected) < 1e-5


def test_ssim_map_is_skimage_full_map_without_border() -> None:
    x, y = _pair((40, 40), 4)
    _, full = structural_similarity(x, y, full=True, **SKIMAGE)
    got = bb_ssim.ssim_map(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got[0, 0].numpy(), full[5:-5, 5:-5], atol=1e-10)


def test_ssim_batch_and_channels_are_independent() -> None:
    pairs = [_pair((32, 32), s) for s in range(4)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]).reshape(2, 2, 32, 32))
    y = torch.from_numpy(np.stack([p[1] for p in pairs]).reshape(2, 2, 32, 32))
    expected = [structural_similarity(a, b, **SKIMAGE) for a, b in pairs]
    got = bb_ssim.ssim(x, y)
    np.testing.assert_allclose(got.numpy(), np.reshape(expected, (2, 2)).mean(1), atol=1e-5)


def test_ssim_identical_images_is_one_and_has_gradients() -> None:
    x, _ = _pair((32, 32), 5)
    t = torch.from_numpy(x)[None, None].requires_grad_(True)
    assert float(bb_ssim.ssim(t, t).detach()) == pytest.approx(1.0, abs=1e-12)
    noisy = (t + 0.05 * torch.randn_like(t)).clamp(0, 1)
    bb_ssim.ssim(noisy, t.detach()).sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_ssim_data_range_scales_like_skimage() -> None:
    x, y = _pair((32, 32), 6)
    expected = structural_similarity(x * 255, y * 255, **{**SKIMAGE, "data_range": 255})
    got = bb_ssim.ssim(
        torch.from_numpy(x * 255)[None, None], torch.from_numpy(y * 255)[None, None], 255.0
    )
    assert abs(float(got) - expected) < 1e-5


def test_ssim_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        bb_ssim.ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17))
    with pytest.raises(ValueError, match="at least 11x11"):
        bb_ssim.ssim(torch.zeros(1, 1, 10, 16), torch.zeros(1, 1, 10, 16))
