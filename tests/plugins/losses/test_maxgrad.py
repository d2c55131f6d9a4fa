"""The intensity + Sobel max-gradient + SSIM fusion loss (``maxgrad``) on analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchbox.cli import main
from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.losses.fusion import SSIMLoss
from benchbox_plugins.losses.maxgrad import (
    MaxGradLoss,
    histogram_saliency,
    intensity_loss,
    intensity_target,
    sobel_gradient_loss,
    sobel_magnitude,
    ssim_source_weights,
    weighted_ssim_loss,
)


def _scipy_sobel(x: torch.Tensor) -> np.ndarray:
    """``|S_x| + |S_y|`` by scipy (``mode="nearest"`` is replicate padding)."""
    img = x.double().numpy()
    return np.abs(ndimage.sobel(img, axis=1, mode="nearest")) + np.abs(
        ndimage.sobel(img, axis=0, mode="nearest")
    )


def test_sobel_magnitude_matches_scipy() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 13, 17)
    got = sobel_magnitude(x)
    for i in range(2):
        np.testing.assert_allclose(got[i, 0].numpy(), _scipy_sobel(x[i, 0]), atol=1e-5)


def test_sobel_of_a_constant_is_zero_and_of_a_ramp_is_8_slope() -> None:
    assert float(sobel_magnitude(torch.full((1, 1, 9, 9), 0.7)).abs().max()) == 0.0
    ramp = (torch.arange(9.0) * 0.1).expand(1, 1, 9, 9)
    mag = sobel_magnitude(ramp)[0, 0]
    # inside: (1 + 2 + 1) * (x[i+1] - x[i-1]) = 4 * 0.2; at the replicated border only one step
    torch.testing.assert_close(mag[:, 1:-1], torch.full((9, 7), 0.8), atol=1e-6, rtol=0)
    torch.testing.assert_close(mag[:, 0], torch.full((9,), 0.4), atol=1e-6, rtol=0)


def test_gradient_term_of_a_constant_fused_image_is_the_mean_stronger_source_edge() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    flat = torch.full((1, 1, 16, 16), 0.3)
    expected = np.maximum(_scipy_sobel(a[0, 0]), _scipy_sobel(b[0, 0])).mean()
    assert float(sobel_gradient_loss(flat, a, b)) == pytest.approx(expected, rel=1e-5)
    # and constant sources ask for no edge at all
    assert float(sobel_gradient_loss(flat, flat * 2, flat)) == 0.0


def test_intensity_term_hand_case() -> None:
    f = torch.full((1, 1, 4, 4), 0.5)
    a = torch.full((1, 1, 4, 4), 0.2)
    b = torch.cat([torch.full((1, 1, 2, 4), 0.9), torch.full((1, 1, 2, 4), 0.1)], dim=2)
    # max(A, B) is 0.9 on the top half (|0.5 - 0.9|) and 0.2 below (|0.5 - 0.2|)
    assert float(intensity_loss(f, a, b)) == pytest.approx((0.4 + 0.3) / 2, abs=1e-6)


def test_loss_is_zero_when_fused_is_the_max_and_sources_share_their_gradients() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 1, 24, 24) * 0.6
    b = a + 0.3  # same gradients everywhere, brighter: max(A, B) = B
    loss = MaxGradLoss(intensity_weight=1, grad_weight=10)
    assert float(loss(torch.maximum(a, b), a, b)) == pytest.approx(0, abs=1e-6)
    assert float(loss(a, a, b)) > 0.29  # the intensity term alone is 0.3
    # with the SSIM term, the loss is smallest at F = A = B
    with_ssim = MaxGradLoss(ssim_weight=1)
    assert float(with_ssim(a, a, a)) == pytest.approx(0, abs=1e-6)


def test_max_fusion_beats_averaging_on_disjoint_structures() -> None:
    # A bright square on the left in A, on the right in B: max keeps both at full
    # contrast, the average halves every edge.
    a, b = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    a[..., 8:24, 4:14] = 0.8
    b[..., 8:24, 18:28] = 0.6
    loss = MaxGradLoss(ssim_weight=1)
    assert float(loss(torch.maximum(a, b), a, b)) < float(loss((a + b) / 2, a, b))
    assert float(sobel_gradient_loss(torch.maximum(a, b), a, b)) == pytest.approx(0, abs=1e-6)


def test_histogram_saliency_matches_brute_force() -> None:
    torch.manual_seed(0)
    x = (torch.rand(2, 1, 6, 7) * 255).round() / 255  # exactly on the bin centres
    got = histogram_saliency(x)
    for i in range(2):
        v = x[i, 0].flatten().double()
        brute = (v[:, None] - v[None, :]).abs().mean(1).reshape(6, 7)
        torch.testing.assert_close(got[i, 0].double(), brute, atol=1e-6, rtol=0)
    half = torch.zeros(1, 1, 4, 4)
    half[..., :1, :] = 1  # a quarter of the pixels are 1
    s = histogram_saliency(half)
    assert float(s[0, 0, 0, 0]) == pytest.approx(0.75) and float(s[0, 0, 3, 0]) == pytest.approx(
        0.25
    )


def test_saliency_target_weights_the_salient_source() -> None:
    a = torch.full((1, 1, 8, 8), 0.4)  # flat: saliency 0 everywhere
    b = torch.zeros(1, 1, 8, 8)
    b[..., :4, :] = 1.0  # half 0, half 1: saliency 0.5 everywhere
    torch.testing.assert_close(intensity_target(a, b, "saliency"), b)
    # both flat: no preference, the average
    torch.testing.assert_close(intensity_target(a, a * 0.5, "saliency"), a * 0.75)
    torch.testing.assert_close(intensity_target(a, b, "max"), torch.maximum(a, b))


def test_ssim_term_equal_balance_is_the_ssim_loss_and_gradient_balance_follows_detail() -> None:
    torch.manual_seed(0)
    f, a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert float(weighted_ssim_loss(f, a, b, "equal")) == pytest.approx(
        float(SSIMLoss()(f, a, b)), abs=1e-6
    )
    flat = torch.full_like(a, 0.5)
    torch.testing.assert_close(
        ssim_source_weights(flat, b, "gradient"), torch.tensor([[0.0, 1.0]] * 2)
    )
    torch.testing.assert_close(ssim_source_weights(flat, flat, "gradient"), torch.full((2, 2), 0.5))
    # with all the weight on B, the term is 1 - SSIM(F, B)
    assert float(weighted_ssim_loss(f, flat, b, "gradient")) == pytest.approx(
        float(SSIMLoss()(f, b)), abs=1e-6
    )


def test_the_loss_is_the_weighted_sum_of_its_terms() -> None:
    torch.manual_seed(0)
    f, a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    loss = MaxGradLoss(2.0, 3.0, 0.5, target="saliency", ssim_balance="gradient")
    expected = (
        2.0 * intensity_loss(f, a, b, "saliency")
        + 3.0 * sobel_gradient_loss(f, a, b)
        + 0.5 * weighted_ssim_loss(f, a, b, "gradient")
    )
    assert float(loss(f, a, b)) == pytest.approx(float(expected), rel=1e-6)
    assert set(MaxGradLoss(1, 0, 0).terms(f, a, b)) == {"intensity"}


@pytest.mark.parametrize(
    "weights", [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)], ids=["int", "grad", "ssim"]
)
@pytest.mark.parametrize("target", ["max", "saliency"])
def test_each_term_passes_a_gradient_to_the_fused_image(weights, target) -> None:
    torch.manual_seed(0)
    raw = torch.randn(2, 1, 16, 16, requires_grad=True)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    MaxGradLoss(*weights, target=target)(torch.sigmoid(raw), a, b).backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    assert raw.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"grad_weight": -1.0}, "grad_weight must be a finite number >= 0, got -1.0"),
        ({"intensity_weight": float("nan")}, "intensity_weight must be a finite number >= 0"),
        ({"ssim_weight": float("inf")}, "ssim_weight must be a finite number >= 0"),
        ({"intensity_weight": 0.0, "grad_weight": 0.0}, "at least one of"),
        ({"target": "mean"}, "target must be one of max, saliency, not 'mean'"),
        ({"ssim_balance": "snr"}, "ssim_balance must be one of equal, gradient"),
    ],
)
def test_bad_options_are_config_errors(opts, message) -> None:
    with pytest.raises(ConfigError, match="loss 'maxgrad'") as info:
        create_registry().get("loss", "maxgrad").build(**opts)
    assert message in str(info.value)


def test_cli_refuses_a_negative_weight_in_one_line(tmp_path, capsys) -> None:
    args = ["run", "--fusion-loss", "maxgrad", "--fusion-loss-opt", "grad_weight=-2"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--seg", "none", "--out", str(tmp_path)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "grad_weight must be a finite number >= 0, got -2.0" in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
