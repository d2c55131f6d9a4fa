"""Classic fusion baselines that need no training: what a learned fusion must beat.

Each is an ``nn.Module`` without parameters (so ``benchbox run`` skips fusion training),
works on batches ``(B, 1, H, W)`` of any size, is differentiable in its inputs, and
returns a fused image in ``[0, 1]``. Written in torch rather than taken from a library
because they run inside the batched evaluation loop on the model's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchbox import ConfigError, Register, hookimpl

#: Burt & Adelson's generating kernel w = [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2] with a = 0.4
#: is the classic choice; a = 0.375 gives the binomial [1, 4, 6, 4, 1] / 16 used here.
BURT_ADELSON_KERNEL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


class MeanFusion(nn.Module):
    """Pixel-wise average of the two sources, (a + b) / 2."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a + b) / 2).clamp(0, 1)


def _max_abs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per element, whichever of ``x`` and ``y`` has the larger magnitude (``x`` on ties)."""
    return torch.where(x.abs() >= y.abs(), x, y)


class MaxFusion(nn.Module):
    """Pixel-wise maximum absolute value: per pixel, the source of larger magnitude.

    On images in ``[0, 1]`` the magnitude is the value itself, so this is the
    pixel-wise maximum ``max(a, b)``: the brighter source wins.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _max_abs(a, b).clamp(0, 1)


class SourceFusion(nn.Module):
    """Pass one source through unchanged: the reference a fusion should improve on."""

    def __init__(self, source: str = "a") -> None:
        super().__init__()
        if source not in ("a", "b"):
            raise ConfigError(f"source must be 'a' or 'b', not {source!r}")
        self.source = source

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a if self.source == "a" else b).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"source={self.source!r}"


def source_a() -> SourceFusion:
    """Source a passed through unchanged (a reference, not a fusion)."""
    return SourceFusion("a")


def source_b() -> SourceFusion:
    """Source b passed through unchanged (a reference, not a fusion)."""
    return SourceFusion("b")


def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap filter with reflect padding, channel by channel."""
    c = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, taps.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _kernel(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(BURT_ADELSON_KERNEL, dtype=x.dtype, device=x.device)


def pyramid_reduce(x: torch.Tensor) -> torch.Tensor:
    """REDUCE: blur, then keep every second row and column (size ``ceil(n / 2)``)."""
    return _blur(x, _kernel(x))[..., ::2, ::2]


def pyramid_expand(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """EXPAND to ``size``: insert zeros between samples, blur with 2x the kernel, crop.

    The factor 2 per axis restores the mean lost to the inserted zeros, so a constant
    image expands to the same constant (reflect padding keeps that true at the borders).
    """
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return _blur(up, 2 * _kernel(x))[..., : size[0], : size[1]]


def usable_levels(height: int, width: int, levels: int) -> int:
    """How many of ``levels`` fit: each level that is reduced must be >= 3 px per side.

    Three pixels is the least a 5-tap filter with reflect padding can process.
    """
    n, h, w = 0, height, width
    while n < levels and min(h, w) >= 3:
        h, w, n = (h + 1) // 2, (w + 1) // 2, n + 1
    return n


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid (Burt & Adelson, 1983): ``levels`` band-pass images + the base.

    Any size works: a level of odd size reduces to ``ceil(n / 2)`` and expands back by
    cropping. ``levels`` is capped by :func:`usable_levels`. The last element is the
    coarsest Gaussian level; :func:`reconstruct` inverts the pyramid exactly.
    """
    n = usable_levels(x.shape[-2], x.shape[-1], levels)
    pyramid = []
    for _ in range(n):
        low = pyramid_reduce(x)
        pyramid.append(x - pyramid_expand(low, (x.shape[-2], x.shape[-1])))
        x = low
    pyramid.append(x)
    return pyramid


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Collapse a Laplacian pyramid: expand the base and add each band, coarse to fine."""
    x = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        x = band + pyramid_expand(x, (band.shape[-2], band.shape[-1]))
    return x


class LaplacianFusion(nn.Module):
    """Laplacian pyramid fusion: max-abs detail bands, averaged base (Burt & Adelson).

    Each band-pass level keeps, per pixel, the coefficient of larger magnitude (the
    stronger edge); the coarsest level is the average of both. The collapsed pyramid
    can leave ``[0, 1]`` slightly near strong edges and is clamped.

    Args:
        levels: number of band-pass levels (>= 1); fewer are used on images too small
            for them (each reduced level must be >= 3 px per side).
    """

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ConfigError(f"laplacian: levels must be an integer >= 1, not {levels!r}")
        self.levels = levels

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # Under AMP the blurs would run in half precision and the pyramid would no
        # longer collapse back to its input; a baseline must not depend on that.
        with torch.autocast(a.device.type, enabled=False):
            pa = laplacian_pyramid(a.float(), self.levels)
            pb = laplacian_pyramid(b.float(), self.levels)
            fused = [_max_abs(x, y) for x, y in zip(pa[:-1], pb[:-1], strict=True)]
            fused.append((pa[-1] + pb[-1]) / 2)
            return reconstruct(fused).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def pca_weights(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per image pair, the weights ``(w_a, w_b)`` from the first principal component.

    For each pair, ``C = [[p, q], [q, r]]`` is the 2x2 covariance of the pixel values of
    ``a`` and ``b`` (``p = var a``, ``r = var b``, ``q = cov(a, b)``). Its largest
    eigenvalue is ``l = (p + r) / 2 + sqrt(((p - r) / 2) ** 2 + q ** 2)`` with eigenvector
    ``v = (l - r, q)`` (or the equivalent ``(q, l - p)``, used when ``r > p`` because it
    is then the non-degenerate one). The weights are ``w = |v| / (|v_a| + |v_b|)``: the
    absolute values keep them in ``[0, 1]`` when ``a`` and ``b`` are anti-correlated.
    When ``C`` has a double eigenvalue (both sources constant, or equal variance and no
    correlation) no direction is preferred and the weights are ``(0.5, 0.5)``.

    Returns:
        A tensor ``(B, 2)`` of weights summing to 1.
    """
    x = a.flatten(1).double()
    y = b.flatten(1).double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    p, r, q = (x * x).mean(1), (y * y).mean(1), (x * y).mean(1)
    largest = (p + r) / 2 + torch.sqrt(((p - r) / 2) ** 2 + q**2)
    va = torch.where(p >= r, largest - r, q.abs())
    vb = torch.where(p >= r, q.abs(), largest - p)
    total = va + vb
    degenerate = total <= eps * torch.clamp(p + r, min=1.0)
    half = torch.full_like(total, 0.5)
    wa = torch.where(degenerate, half, va / torch.where(degenerate, 1.0, total))
    return torch.stack([wa, 1 - wa], dim=1).to(a.dtype)


class PCAFusion(nn.Module):
    """Weighted average with weights from the first principal component (per image pair).

    ``fused = w_a * a + w_b * b`` with ``(w_a, w_b)`` from :func:`pca_weights`: the
    source that carries more of the pair's variance gets more weight; a constant source
    gets none.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = pca_weights(a, b).view(-1, 2, 1, 1, 1)
        return (w[:, 0] * a + w[:, 1] * b).clamp(0, 1)


@hookimpl
def register_fusions(register: Register) -> None:
    register("mean", MeanFusion, baseline=True)
    register("max", MaxFusion, baseline=True)
    register("laplacian", LaplacianFusion, baseline=True)
    register("pca", PCAFusion, baseline=True)
    register("source-a", source_a, baseline=True)
    register("source-b", source_b, baseline=True)
