"""Intensity transforms: values only, an independent draw per source; the mask is kept.

The same code serves 2D ``(B, 1, H, W)`` and 3D ``(B, 1, D, H, W)`` sources: one draw
per sample, broadcast over its pixels or voxels.
"""

from __future__ import annotations

from typing import Any

import torch

from benchbox_plugins.transforms._common import (
    Batch,
    check_p,
    check_range,
    chosen,
    per_sample,
    pick,
    uniform,
)


class _PerSource:
    """Applies ``self.change(x, generator)`` to ``a`` and ``b`` with separate draws."""

    p: float

    def change(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        out = dict(batch)
        for key in ("a", "b"):
            x = batch[key]
            on = chosen(x.shape[0], self.p, generator, x.device)
            out[key] = pick(on, self.change(x, generator).clamp(0, 1), x)
        return out


class Intensity(_PerSource):
    """``x * s + t`` with ``s`` in ``[1 - scale, 1 + scale]`` and ``t`` in ``[-shift, shift]``."""

    def __init__(self, p: float = 0.5, scale: float = 0.1, shift: float = 0.1) -> None:
        if not 0 <= scale < 1 or shift < 0:
            raise ValueError(f"scale must be in [0, 1) and shift >= 0, got {scale}, {shift}")
        self.p, self.scale, self.shift = check_p(p), float(scale), float(shift)

    def change(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        s = uniform(n, 1 - self.scale, 1 + self.scale, generator, x.device).view(per_sample(x))
        t = uniform(n, -self.shift, self.shift, generator, x.device).view(per_sample(x))
        return x * s + t


class Gamma(_PerSource):
    """``x ** g`` with ``log g`` uniform in ``[log min, log max]``: keeps 0 and 1 fixed."""

    def __init__(self, p: float = 0.5, gamma: tuple[float, float] = (0.7, 1.5)) -> None:
        self.p = check_p(p)
        lo, hi = check_range("gamma", gamma, low=1e-3)
        self.log_range = (float(torch.tensor(lo).log()), float(torch.tensor(hi).log()))

    def change(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        g = uniform(n, *self.log_range, generator, x.device).exp().view(per_sample(x))
        return x.clamp_min(0) ** g


class Noise(_PerSource):
    """Additive Gaussian noise whose standard deviation is drawn in ``[0, std]``."""

    def __init__(self, p: float = 0.5, std: float = 0.03) -> None:
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.p, self.std = check_p(p), float(std)

    def change(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        sigma = uniform(n, 0.0, self.std, generator, x.device).view(per_sample(x))
        return x + sigma * torch.randn(x.shape, generator=generator, device=x.device)


def intensity(p: float = 0.5, scale: float = 0.1, shift: float = 0.1) -> Intensity:
    """Random intensity scale and shift, per source"""
    return Intensity(p, scale, shift)


def gamma(p: float = 0.5, gamma: Any = (0.7, 1.5)) -> Gamma:
    """Random gamma correction, per source"""
    return Gamma(p, gamma)


def noise(p: float = 0.5, std: float = 0.03) -> Noise:
    """Random additive Gaussian noise, per source"""
    return Noise(p, std)
