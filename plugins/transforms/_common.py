"""Helpers shared by the built-in transforms: per-sample draws and selections."""

from __future__ import annotations

from typing import Any

import torch

Batch = dict[str, Any]


def check_p(p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return float(p)


def check_range(name: str, value: Any, low: float | None = None) -> tuple[float, float]:
    """A ``(min, max)`` pair from a list or tuple of two numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair [min, max], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi or (low is not None and lo < low):
        bound = f" and min >= {low}" if low is not None else ""
        raise ValueError(f"{name} must have min <= max{bound}, got {value!r}")
    return lo, hi


def uniform(n: int, lo: float, hi: float, g: torch.Generator, device: Any) -> torch.Tensor:
    """``n`` draws from U(lo, hi) as float32 on ``device``."""
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def chosen(n: int, p: float, g: torch.Generator, device: Any) -> torch.Tensor:
    """A boolean ``(n,)``: which samples the transform applies to (probability ``p``)."""
    return torch.rand(n, generator=g, device=device) < p


def per_sample(x: torch.Tensor) -> tuple[int, ...]:
    """The shape ``(B, 1, ...)`` that broadcasts one value per sample over ``x``."""
    return (x.shape[0], *([1] * (x.dim() - 1)))


def pick(where: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per sample: ``new`` where ``where`` (shape ``(B,)``), else ``old``."""
    return torch.where(where.view(-1, *([1] * (old.dim() - 1))), new, old)
