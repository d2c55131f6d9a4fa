"""Intensity + Sobel max-gradient + SSIM fusion loss, as in the unsupervised fusion literature.

Learned fusion networks without a ground truth (DDcGAN, U2Fusion, SwinFusion, CDDFuse and
their kin) are trained with a weighted sum of three kinds of terms, all comparing the
fused image ``F`` with a target built from the sources ``A`` and ``B``:

* an **intensity** term, ``mean |F - T|``, towards a target image ``T``: the
  element-wise maximum ``max(A, B)`` (the brighter source wins, as in CDDFuse's and
  SwinFusion's "max" intensity loss) or a saliency-weighted average of the sources;
* a **gradient** (texture) term, ``mean | |∇F| - max(|∇A|, |∇B|) |``, with ``|∇x|``
  the L1 norm of the 3x3 Sobel responses ``|S_x * x| + |S_y * x|``: each pixel of ``F``
  should carry the stronger of the two sources' edges;
* a **structure** term, ``w_A (1 - SSIM(F, A)) + w_B (1 - SSIM(F, B))``, with equal
  weights or weights proportional to each source's mean Sobel magnitude (the source
  with more detail counts more).

What is written here follows those descriptions, not any project's code. Choices of
its own: the Sobel filter pads by replicating the border (zero padding, as MATLAB's
``filter2`` and many fusion codes do, invents an edge at the border of every
non-black image, so a constant image would have a gradient); the L1 norm of the two
Sobel responses rather than the Euclidean one keeps the gradient of the loss finite on
flat regions; SSIM is :func:`benchbox.metrics.ssim.ssim`, the metrics' own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchbox.metrics.ssim import ssim
from benchbox_plugins.losses.fusion import _check

TARGETS = ("max", "saliency")
SSIM_BALANCES = ("equal", "gradient")
#: Bins of the histogram-contrast saliency (images in [0, 1], 8-bit sources).
SALIENCY_BINS = 256


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``|S_x * x| + |S_y * x|`` per channel, same size, replicate-padded border.

    The 3x3 Sobel kernels are applied separably (a central difference along one axis,
    the ``[1, 2, 1]`` smoothing along the other), so a constant image gives exactly 0.

    Shapes: ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``>= 0``.
    """
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = p[..., :, 2:] - p[..., :, :-2]  # (H + 2, W)
    dy = p[..., 2:, :] - p[..., :-2, :]  # (H, W + 2)
    sx = dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]
    sy = dy[..., :, :-2] + 2 * dy[..., :, 1:-1] + dy[..., :, 2:]
    return sx.abs() + sy.abs()


def histogram_saliency(x: torch.Tensor, bins: int = SALIENCY_BINS) -> torch.Tensor:
    """Global-contrast saliency of each pixel: its mean absolute difference to all pixels.

    ``S(p) = (1/N) sum_q |x(p) - x(q)|`` over the pixels of the same image and channel,
    computed from a ``bins``-level histogram (pixel values quantised to the bin centres),
    so in ``O(N + bins^2)``. A pixel whose value is rare and far from the rest is
    salient; a constant image has saliency 0 everywhere. Not differentiable (a target).

    Shapes: ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, H, W)`` in ``[0, 1]``.
    """
    b, c, h, w = x.shape
    index = (x.detach().clamp(0, 1) * (bins - 1)).round().long().reshape(b * c, h * w)
    hist = torch.zeros(b * c, bins, dtype=torch.float64, device=x.device)
    hist.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float64))
    hist /= h * w
    levels = torch.linspace(0, 1, bins, dtype=torch.float64, device=x.device)
    distance = (levels[:, None] - levels[None, :]).abs()  # (bins, bins)
    per_level = hist @ distance  # (B*C, bins): saliency of each grey level
    return per_level.gather(1, index).reshape(b, c, h, w).to(x.dtype)


def intensity_target(a: torch.Tensor, b: torch.Tensor, target: str = "max") -> torch.Tensor:
    """The image the intensity term pulls towards.

    ``"max"``: ``max(A, B)`` per pixel. ``"saliency"``: ``w A + (1 - w) B`` with
    ``w = S_A / (S_A + S_B)`` from :func:`histogram_saliency` (0.5 where both are 0).
    """
    if target == "max":
        return torch.maximum(a, b)
    if target == "saliency":
        sa, sb = histogram_saliency(a), histogram_saliency(b)
        total = sa + sb
        w = torch.where(total > 0, sa / total.clamp_min(1e-12), torch.full_like(total, 0.5))
        return w * a + (1 - w) * b
    raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")


def intensity_loss(
    fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor, target: str = "max"
) -> torch.Tensor:
    """``mean |F - T|`` with ``T`` = :func:`intensity_target` (no gradient through ``T``)."""
    with torch.no_grad():
        t = intensity_target(a, b, target)
    return (fused - t).abs().mean()


def sobel_gradient_loss(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean | |∇F| - max(|∇A|, |∇B|) |`` with ``|∇|`` = :func:`sobel_magnitude`."""
    with torch.no_grad():
        t = torch.maximum(sobel_magnitude(a), sobel_magnitude(b))
    return (sobel_magnitude(fused) - t).abs().mean()


def ssim_source_weights(a: torch.Tensor, b: torch.Tensor, balance: str) -> torch.Tensor:
    """Per image pair, ``(w_A, w_B)`` summing to 1: equal, or by mean Sobel magnitude.

    Shapes: ``(B, 1, H, W)`` twice -> ``(B, 2)``.
    """
    n = a.shape[0]
    if balance == "equal":
        return a.new_full((n, 2), 0.5)
    if balance == "gradient":
        ga = sobel_magnitude(a).flatten(1).mean(1)
        gb = sobel_magnitude(b).flatten(1).mean(1)
        total = ga + gb
        wa = torch.where(total > 0, ga / total.clamp_min(1e-12), torch.full_like(total, 0.5))
        return torch.stack([wa, 1 - wa], dim=1)
    raise ValueError(f"ssim_balance must be one of {', '.join(SSIM_BALANCES)}, not {balance!r}")


def weighted_ssim_loss(
    fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor, balance: str = "equal"
) -> torch.Tensor:
    """``mean over the batch of w_A (1 - SSIM(F, A)) + w_B (1 - SSIM(F, B))``, in [0, 2]."""
    with torch.no_grad():
        w = ssim_source_weights(a, b, balance)
    per_image = w[:, 0] * (1 - ssim(fused, a)) + w[:, 1] * (1 - ssim(fused, b))
    return per_image.mean()


def _weight(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0 or value == float("inf"):  # also refuses NaN
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class MaxGradLoss(nn.Module):
    """``w_i * intensity + w_g * Sobel max-gradient + w_s * weighted (1 - SSIM)``.

    See the module docstring for each term. Defaults: intensity towards ``max(A, B)``
    with weight 1, the gradient term with weight 10 (the ratio CDDFuse's description
    gives its two terms), no SSIM term.

    Args:
        intensity_weight: ``w_i`` (>= 0), weight of :func:`intensity_loss`.
        grad_weight: ``w_g`` (>= 0), weight of :func:`sobel_gradient_loss`.
        ssim_weight: ``w_s`` (>= 0), weight of :func:`weighted_ssim_loss`.
        target: intensity target, ``"max"`` or ``"saliency"`` (:func:`intensity_target`).
        ssim_balance: per-source SSIM weights, ``"equal"`` or ``"gradient"``.

    Shapes: ``forward(fused, a, b)``, three ``(B, 1, H, W)`` images in ``[0, 1]`` with
    ``H, W >= 11`` when ``w_s > 0`` -> scalar ``>= 0``. With ``w_s = 0`` it is 0 exactly
    when ``F`` equals the target and carries, at every pixel, the stronger source edge
    (e.g. ``F = A = B``, or ``F = max(A, B)`` where the brighter source is also the
    more detailed one).

    Raises:
        ValueError: a negative or non-finite weight, all weights 0, or an unknown
            ``target`` / ``ssim_balance`` (a configuration error for ``benchbox run``).
    """

    def __init__(
        self,
        intensity_weight: float = 1.0,
        grad_weight: float = 10.0,
        ssim_weight: float = 0.0,
        target: str = "max",
        ssim_balance: str = "equal",
    ) -> None:
        super().__init__()
        self.intensity_weight = _weight("intensity_weight", intensity_weight)
        self.grad_weight = _weight("grad_weight", grad_weight)
        self.ssim_weight = _weight("ssim_weight", ssim_weight)
        if self.intensity_weight + self.grad_weight + self.ssim_weight == 0:
            raise ValueError(
                "at least one of intensity_weight, grad_weight, ssim_weight must be > 0"
            )
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        if ssim_balance not in SSIM_BALANCES:
            raise ValueError(
                f"ssim_balance must be one of {', '.join(SSIM_BALANCES)}, not {ssim_balance!r}"
            )
        self.target = target
        self.ssim_balance = ssim_balance

    def terms(
        self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The unweighted terms whose weight is not 0: ``intensity``, ``gradient``, ``ssim``."""
        _check((fused, a, b), "maxgrad")
        out = {}
        if self.intensity_weight:
            out["intensity"] = intensity_loss(fused, a, b, self.target)
        if self.grad_weight:
            out["gradient"] = sobel_gradient_loss(fused, a, b)
        if self.ssim_weight:
            out["ssim"] = weighted_ssim_loss(fused, a, b, self.ssim_balance)
        return out

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        weights = {
            "intensity": self.intensity_weight,
            "gradient": self.grad_weight,
            "ssim": self.ssim_weight,
        }
        terms = self.terms(fused, a, b)
        return torch.stack([weights[k] * v for k, v in terms.items()]).sum()

    def extra_repr(self) -> str:
        return (
            f"intensity_weight={self.intensity_weight}, grad_weight={self.grad_weight}, "
            f"ssim_weight={self.ssim_weight}, target={self.target!r}, "
            f"ssim_balance={self.ssim_balance!r}"
        )
