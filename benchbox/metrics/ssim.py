"""SSIM (Wang et al., 2004) in torch: one implementation for the loss and the metrics.

Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample)
covariance, and only the "valid" part of the SSIM map (no padding), as
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``, which the tests check it against.
Written with torch (not skimage) because the losses need gradients and batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["K1", "K2", "SIGMA", "WINDOW", "gaussian_window", "ssim", "ssim_map"]

WINDOW = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def gaussian_window(
    size: int = WINDOW,
    sigma: float = SIGMA,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A normalised 1D Gaussian of ``size`` taps (the 2D window is its outer product)."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = WINDOW,
    sigma: float = SIGMA,
    k1: float = K1,
    k2: float = K2,
    return_cs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The SSIM map of two ``(B, C, H, W)`` images over the valid window positions.

    With ``return_cs`` also returns the contrast-structure map (used by MS-SSIM).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim expects two (B, C, H, W) tensors of one shape, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < window:
        raise ValueError(
            f"ssim needs images of at least {window}x{window}, got {tuple(x.shape[-2:])}"
        )
    # In at least float32 and with autocast off: E[x^2] - E[x]^2 cancels catastrophically
    # in bf16 (8 bits of mantissa), and autocast would run the convolutions in bf16 even
    # on float32 inputs.
    with torch.autocast(x.device.type, enabled=False):
        return _ssim_map(x, y, data_range, window, sigma, k1, k2, return_cs)


def _ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float,
    window: int,
    sigma: float,
    k1: float,
    k2: float,
    return_cs: bool,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.promote_types(x.dtype, torch.float32)
    x, y = x.to(dtype), y.to(dtype)
    g = gaussian_window(window, sigma, dtype, x.device)
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    var_x = _blur(x * x, g) - mu_x**2
    var_y = _blur(y * y, g) - mu_y**2
    cov = _blur(x * y, g) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    s = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return (s, cs) if return_cs else s


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image: ``(B, C, H, W)`` pair -> ``(B,)``."""
    s = ssim_map(x, y, data_range)
    assert isinstance(s, torch.Tensor)
    return s.flatten(1).mean(1)
