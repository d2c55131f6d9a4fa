"""Distillation of the fused image: the student's fusion model pulled towards the
teacher's fused image, by L1 or by SSIM."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from benchbox import DataError
from benchbox.metrics.ssim import ssim
from benchbox_plugins.distillers.logits import pair

__all__ = ["DISTANCES", "FusedDistiller"]

#: The values of ``distance``.
DISTANCES = ("l1", "ssim")


class FusedDistiller(nn.Module):
    """``weight * mean |F_s - F_t|`` (``distance="l1"``) or ``weight * (1 - mean SSIM(F_s,
    F_t))`` (``distance="ssim"``) between the student's and the teacher's fused images.

    SSIM is :func:`benchbox.metrics.ssim.ssim` (the metric's own implementation: 11x11
    Gaussian window, valid region), so images need sides of at least 11 pixels.

    Args:
        distance: ``l1`` or ``ssim``.
        weight: a factor of this distiller's term (> 0), besides ``--distill-weight``.

    Shapes: ``student["fused"]`` and ``teacher["fused"]`` ``(B, 1, H, W)`` in ``[0, 1]``,
    or ``(B, 1, D, H, W)`` in a 3D run (compared slice by slice, as they were fused) ->
    scalar ``>= 0`` (0 for equal images).
    """

    def __init__(self, distance: str = "l1", weight: float = 1.0) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f"weight must be a number > 0, got {weight!r}")
        self.distance = distance
        self.weight = float(weight)

    def forward(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        s, t = pair(student, teacher, "fused", "fused")
        if s.shape != t.shape or s.dim() not in (4, 5):
            raise DataError(
                f"distiller 'fused' expects two (B, 1, H, W) or (B, 1, D, H, W) images of one "
                f"shape, got {tuple(s.shape)} and {tuple(t.shape)}"
            )
        if s.dim() == 5:  # a 3D run fuses slice by slice: compare the slices
            s, t = (v.transpose(1, 2).flatten(0, 1) for v in (s, t))
        if self.distance == "l1":
            return self.weight * (s - t).abs().mean()
        return self.weight * (1 - ssim(s, t).mean())
