"""SSIM and fusion losses against skimage and hand computations."""

from __future__ import annotations

import pytest
import torch

from benchbox.errors import DataError
from benchbox.hooks.manager import create_registry
from benchbox.metrics.ssim import K1
from benchbox_plugins.losses.fusion import FusionLoss, SSIMLoss, max_gradient_loss


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            x.double().numpy(),
            y.double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
    )


def test_ssim_loss_of_identical_images_is_zero() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 1, 24, 24)
    assert float(SSIMLoss()(x, x)) == pytest.approx(0, abs=1e-6)
    assert float(SSIMLoss()(x, x, x)) == pytest.approx(0, abs=1e-6)


def test_ssim_loss_matches_skimage_and_averages_its_targets() -> None:
    torch.manual_seed(0)
    f, a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    blur = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1)  # correlated with a
    loss_fa = 1 - sum(_skimage_ssim(blur[i, 0], a[i, 0]) for i in range(2)) / 2
    loss_fb = 1 - sum(_skimage_ssim(blur[i, 0], b[i, 0]) for i in range(2)) / 2
    assert float(SSIMLoss()(blur, a)) == pytest.approx(loss_fa, abs=1e-5)
    assert float(SSIMLoss()(blur, a, b)) == pytest.approx((loss_fa + loss_fb) / 2, abs=1e-5)
    assert float(SSIMLoss()(f, a)) > float(SSIMLoss()(blur, a))


def test_max_gradient_term_hand_case() -> None:
    fused = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]])
    a = torch.tensor([[[[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]]])
    b = torch.tensor([[[[0.0, 0.0, 0.0], [0.0, 0.0, 0.9]]]])
    # columns: |dF| = [[1, 0], [0, 0]], max(|dA|, |dB|) = [[.5, 0], [0, .9]] -> (.5 + .9) / 4
    # rows:    |dF| = [[0, 1, 1]],      max(|dA|, |dB|) = [[0, .5, .9]]      -> (.5 + .1) / 3
    expected = 1.4 / 4 + 0.6 / 3
    assert float(max_gradient_loss(fused, a, b)) == pytest.approx(expected, abs=1e-6)


def test_fusion_loss_hand_case() -> None:
    # F = 0.5 and A = 0.2 are flat: SSIM reduces to the luminance term
    # (2 * 0.5 * 0.2 + C1) / (0.5**2 + 0.2**2 + C1). B is a ramp along the columns
    # (slope 0.05), so its gradient term is |0 - 0.05| on the column axis and 0 on rows.
    f = torch.full((1, 1, 16, 16), 0.5)
    a = torch.full((1, 1, 16, 16), 0.2)
    b = (torch.arange(16.0) * 0.05).expand(1, 1, 16, 16).contiguous()
    c1 = K1**2
    ssim_fa = (2 * 0.5 * 0.2 + c1) / (0.5**2 + 0.2**2 + c1)
    ssim_fb = _skimage_ssim(f[0, 0], b[0, 0])
    expected = 0.7 * ((1 - ssim_fa) + (1 - ssim_fb)) + 0.3 * 0.05
    assert float(FusionLoss()(f, a, b)) == pytest.approx(expected, abs=1e-5)
    assert float(FusionLoss(1.0, 0.0)(f, a, b)) == pytest.approx(2 - ssim_fa - ssim_fb, abs=1e-5)


def test_fusion_loss_is_zero_when_all_three_agree() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    assert float(FusionLoss()(x, x, x)) == pytest.approx(0, abs=1e-6)


def test_gradient_term_rewards_the_sources_edges_not_flatness() -> None:
    # The seed article's term (total variation of F) prefers a flat image; this one
    # prefers the fused image that carries A's edge.
    a = torch.zeros(1, 1, 16, 16)
    a[..., 8:] = 1.0
    b = torch.full((1, 1, 16, 16), 0.5)
    flat = torch.full((1, 1, 16, 16), 0.5)
    assert float(max_gradient_loss(a, a, b)) == 0.0
    assert float(max_gradient_loss(flat, a, b)) > 0.0


def test_fusion_loss_is_registered_with_the_articles_weights() -> None:
    loss = create_registry().get("loss", "fusion").build()
    assert (loss.ssim_weight, loss.grad_weight) == (0.7, 0.3)


def test_mismatched_shapes_are_data_errors() -> None:
    with pytest.raises(DataError, match="one shape"):
        FusionLoss()(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    with pytest.raises(DataError, match="ssim"):
        SSIMLoss()(torch.rand(1, 1, 16, 16), torch.rand(1, 16, 16))
