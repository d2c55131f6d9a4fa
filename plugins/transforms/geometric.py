"""Geometric transforms: one draw per sample, applied alike to ``a``, ``b`` and ``mask``.

Each takes 2D batches ``(B, 1, H, W)`` and 3D ones ``(B, 1, D, H, W)`` (masks without
the channel axis). In 3D, ``flip`` also mirrors the depth axis, ``rot90`` turns each
volume in its axial (``H, W``) plane, and ``affine`` rotates about each of the three
axes by its own angle; a 2D batch draws exactly as before 3D existed.
"""

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
    """Mirror each sample left-right, up-down and (3D) along its depth, each axis with
    probability ``p``."""

    def __init__(
        self, p: float = 0.5, horizontal: bool = True, vertical: bool = True, depth: bool = True
    ) -> None:
        self.p, self.axes = check_p(p), [d for d, on in ((-1, horizontal), (-2, vertical)) if on]
        self.depth = depth

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        n, device = batch["a"].shape[0], batch["a"].device
        axes = self.axes + ([-3] if self.depth and batch["a"].dim() == 5 else [])
        draws = [chosen(n, self.p, generator, device) for _ in axes]

        def move(x: torch.Tensor, is_mask: bool) -> torch.Tensor:
            for dim, where in zip(axes, draws, strict=True):
                x = pick(where, x.flip(dim), x)
            return x

        return _apply(batch, move)


class Rot90:
    """Rotate each sample by 90, 180 or 270 degrees (uniformly) with probability ``p``,
    in its ``(H, W)`` plane (a volume about its depth axis).

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

    Sources are resampled bilinearly (trilinearly in 3D), the mask by nearest neighbour
    (labels are never blended); pixels that come from outside the image are 0
    (background) in both. In 3D the rotation is about each axis by its own angle in
    ``[-degrees, degrees]``.
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
        if a.dim() == 5:
            theta = self._theta_3d(n, generator, device)
        else:
            theta = self._theta_2d(n, generator, device)
        grid = F.affine_grid(theta, list(a.shape), align_corners=False)

        def move(x: torch.Tensor, is_mask: bool) -> torch.Tensor:
            if is_mask:
                moved = F.grid_sample(x.float(), grid, mode="nearest", align_corners=False)
                moved = moved.round().to(x.dtype)
            else:
                moved = F.grid_sample(x, grid, mode="bilinear", align_corners=False).clamp(0, 1)
            return pick(on, moved, x)

        return _apply(batch, move)

    def _theta_3d(self, n: int, generator: torch.Generator, device: Any) -> torch.Tensor:
        """``(n, 3, 4)``: output to input coordinates (affine_grid's inverse transform)."""
        angles = uniform(3 * n, -self.degrees, self.degrees, generator, device).view(n, 3)
        angles = angles * (math.pi / 180)
        zoom = uniform(n, *self.scale, generator, device)
        shift = uniform(3 * n, -self.translate, self.translate, generator, device).view(n, 3)
        rotation = torch.eye(3, device=device).expand(n, 3, 3)
        for axis in range(3):
            cos, sin = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
            i, j = [k for k in range(3) if k != axis]
            turn = torch.eye(3, device=device).repeat(n, 1, 1)
            turn[:, i, i], turn[:, i, j], turn[:, j, i], turn[:, j, j] = cos, -sin, sin, cos
            rotation = rotation @ turn
        return torch.cat([rotation / zoom.view(n, 1, 1), 2 * shift[:, :, None]], dim=2)

    def _theta_2d(self, n: int, generator: torch.Generator, device: Any) -> torch.Tensor:
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
        return theta


def flip(
    p: float = 0.5, horizontal: bool = True, vertical: bool = True, depth: bool = True
) -> Flip:
    """Random left-right, up-down and (3D) depth mirroring (geometric)"""
    return Flip(p, horizontal, vertical, depth)


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
