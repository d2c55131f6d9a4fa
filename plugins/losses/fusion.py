"""Fusion losses: 1 - SSIM, and the seed article's SSIM + gradient loss (corrected).

SSIM is :func:`benchbox.metrics.ssim.ssim`, the one implementation the metrics use
(Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid region), so
images need sides of at least 11 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from benchbox import DataError
from benchbox.metrics.ssim import ssim


def _check(images: tuple[torch.Tensor, ...], loss: str) -> None:
    shape = images[0].shape
    if len(shape) != 4 or any(t.shape != shape for t in images):
        raise DataError(
            f"{loss} loss expects images (B, C, H, W) of one shape, got "
            + ", ".join(str(tuple(t.shape)) for t in images)
        )


def _grad_x(x: torch.Tensor) -> torch.Tensor:
    return x[..., :, 1:] - x[..., :, :-1]


def _grad_y(x: torch.Tensor) -> torch.Tensor:
    return x[..., 1:, :] - x[..., :-1, :]


def max_gradient_loss(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum over axes of mean | |d F| - max(|d A|, |d B|) |`` with forward differences.

    For each axis (columns, then rows) the forward difference ``d`` of each image is
    taken; the fused image's gradient magnitude is compared, pixel by pixel, with the
    stronger of the two sources' magnitudes, and the absolute differences are averaged.
    The two axis terms are summed, as the seed article sums its two terms.
    """
    total = fused.new_zeros(())
    for grad in (_grad_x, _grad_y):
        target = torch.maximum(grad(a).abs(), grad(b).abs())
        total = total + (grad(fused).abs() - target).abs().mean()
    return total


class SSIMLoss(nn.Module):
    """``1 - SSIM``, averaged over the batch and over every target given.

    ``forward(pred, *targets)`` returns the mean over ``targets`` of
    ``1 - mean_batch SSIM(pred, target)``: with one target a plain SSIM loss, and as a
    fusion loss ``forward(fused, a, b) = ((1 - SSIM(F, A)) + (1 - SSIM(F, B))) / 2``.

    Args:
        data_range: the value range of the images (1 for images in ``[0, 1]``).

    Shapes: images ``(B, C, H, W)`` of one shape, ``H, W >= 11`` -> scalar in ``[0, 2]``
    (0 for identical images).
    """

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = float(data_range)

    def forward(self, pred: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        if not targets:
            raise ValueError("ssim loss needs at least one target image")
        _check((pred, *targets), "ssim")
        losses = [1 - ssim(pred, t, self.data_range).mean() for t in targets]
        return torch.stack(losses).mean()


class FusionLoss(nn.Module):
    """Fusion loss: ``w_s [(1 - SSIM(F, A)) + (1 - SSIM(F, B))] + w_g * gradient term``.

    The SSIM part and the weights (0.7 and 0.3) are the seed article's. The gradient
    term is :func:`max_gradient_loss`: the L1 distance between the gradient magnitude
    of ``F`` and the element-wise maximum of ``|grad A|`` and ``|grad B|``, per axis.

    Deviation from the seed article: its "gradient preservation" term is
    ``mean |F[:, :, 1:] - F[:, :, :-1]| + mean |F[..., 1:] - F[..., :-1]|``, the total
    variation of ``F`` alone. Minimising it penalises every edge of ``F``, i.e. it
    blurs the fused image instead of preserving the sources' edges, and it never looks
    at ``A`` or ``B``. The term used here pulls each of ``F``'s gradients towards the
    stronger source gradient at that pixel, which is what the article's name says.

    Args:
        ssim_weight: ``w_s``, the weight of the summed SSIM losses.
        grad_weight: ``w_g``, the weight of the gradient term.

    Shapes: ``forward(fused, a, b)``, three ``(B, 1, H, W)`` images in ``[0, 1]`` with
    ``H, W >= 11`` -> scalar ``>= 0`` (0 only when ``F`` equals both sources' structure
    and gradients, e.g. ``F = A = B``).
    """

    def __init__(self, ssim_weight: float = 0.7, grad_weight: float = 0.3) -> None:
        super().__init__()
        self.ssim_weight = float(ssim_weight)
        self.grad_weight = float(grad_weight)

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check((fused, a, b), "fusion")
        structure = (1 - ssim(fused, a).mean()) + (1 - ssim(fused, b).mean())
        return self.ssim_weight * structure + self.grad_weight * max_gradient_loss(fused, a, b)
