"""Geometric transforms: one draw per sample, applied alike to ``a``, ``b`` and ``mask``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchbox_plugins.transforms._common import Batch, check_p, check_range, chosen, pick, uniform


def _apply(batch: Batch, move: Callable[[torch.Tensor, bool], torch.Tensor]) -> Batch:
    """``move(x, is_mask)`` on each source and the mask (``(B, H, W)`` -> with a channel)."""
    out = dict(batch)
    out["a"], out["b"] = move(batch["a"], False), move(batch["b"], False)
    if "mask" in batch:
        out["mask"] = move(batch["mask"][:, None], True)[:, 0]
    return out


class Flip:
    """Mirror each sample left-right and/or up-down, each axis with probability ``p``."""

    def __init__(self, p: float = 0.5, horizontal: bool = True, vertical: bool = True) -> None:
        self.p, self.axes = check_p(p), [d for d, on in ((-1, horizontal), (-2, vertical)) if on]

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        n, device = batch["a"].shape[0], batch["a"].device
        draws = [chosen(n, self.p, generator, device) for _ in self.axes]

        def move(x: torch.Tensor, is_mask: bool) -> torch.Tensor:
            for dim, where in zip(self.axes, draws, strict=True):
                x = pick(where, x.flip(dim), x)
            return x

        return _apply(batch, move)


class Rot90:
    """Rotate each sample by 90, 180 or 270 degrees (uniformly) with probability ``p``.

    Non-square images only turn by 180 degrees, which keeps their shape.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_p(p)

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        n, device = batch["a"].shape[0], batch["a"].device
        h, w = batch["a"].shape[-2:]
        on = chosen(n, self.p, generator, device)
        k = torch.randint(1, 4, (n,), generator=generator, device=device)
        if h != w:
            k = torch.full_like(k, 2)
        choices = (1, 2, 3) if h == w else (2,)

        def move(x: torch.Tensor, is_mask: bool) -> torch.Tensor:
            for turns in choices:
                x = pick(on & (k == turns), torch.rot90(x, turns, dims=(-2, -1)), x)
            return x

        return _apply(batch, move)


class Affine:
    """Random rotation, isotropic scaling and translation about the image centre.

    Sources are resampled bilinearly, the mask by nearest neighbour (labels are never
    blended); pixels that come from outside the image are 0 (background) in both.
    """

    def __init__(
        self,
        p: float = 0.5,
        degrees: float = 15.0,
        scale: tuple[float, float] = (0.9, 1.1),
        translate: float = 0.1,
    ) -> None:
        self.p = check_p(p)
        if degrees < 0 or not 0 <= translate <= 1:
            raise ValueError(
                f"degrees must be >= 0 and translate in [0, 1], got {degrees}, {translate}"
            )
        self.degrees, self.translate = float(degrees), float(translate)
        self.scale = check_range("scale", scale, low=1e-3)

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        a = batch["a"]
        n, device = a.shape[0], a.device
        on = chosen(n, self.p, generator, device)
        angle = uniform(n, -self.degrees, self.degrees, generator, device) * (math.pi / 180)
        zoom = uniform(n, *self.scale, generator, device)
        shift = uniform(2 * n, -self.translate, self.translate, generator, device).view(n, 2)
        # affine_grid maps output to input coordinates in [-1, 1]: the inverse transform.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos, -sin, 2 * shift[:, 0]], 1),
                torch.stack([sin, cos, 2 * shift[:, 1]], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(a.shape), align_corners=False)

        def move(x: torch.Tensor, is_mask: bool) -> torch.Tensor:
            if is_mask:
                moved = F.grid_sample(x.float(), grid, mode="nearest", align_corners=False)
                moved = moved.round().to(x.dtype)
            else:
                moved = F.grid_sample(x, grid, mode="bilinear", align_corners=False).clamp(0, 1)
            return pick(on, moved, x)

        return _apply(batch, move)


def flip(p: float = 0.5, horizontal: bool = True, vertical: bool = True) -> Flip:
    """Random left-right and up-down mirroring (geometric)"""
    return Flip(p, horizontal, vertical)


def rot90(p: float = 0.5) -> Rot90:
    """Random rotation by a multiple of 90 degrees (geometric)"""
    return Rot90(p)


def affine(
    p: float = 0.5,
    degrees: float = 15.0,
    scale: Any = (0.9, 1.1),
    translate: float = 0.1,
) -> Affine:
    """Random rotation (+-degrees), scaling and translation (fraction of the size)"""
    return Affine(p, degrees, scale, translate)
