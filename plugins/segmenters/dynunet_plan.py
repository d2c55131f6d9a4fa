"""nnU-Net's rule for a U-Net's kernel sizes and strides, from a patch size and a spacing.

``monai-dynunet`` configures MONAI's ``DynUNet`` (nnU-Net's architecture) the way
nnU-Net's experiment planner does (Isensee et al., Nature Methods 2021, and the
``get_pool_and_conv_props`` rule of its planner), rewritten here from that description:

1. Start from the patch size and the voxel spacing. Each step of the loop adds one
   resolution stage below the current one.
2. An axis may be downsampled (stride 2) while its feature map is at least twice the
   minimal edge (``min_edge``, 4 voxels): downsampling it keeps at least ``min_edge``.
3. Of those axes, only the ones whose current spacing is within a factor 2 of the finest
   among them are downsampled: a coarse (e.g. through-plane) axis waits until the others
   have caught up, so every stage is roughly isotropic in millimetres. When a single
   axis remains, it is downsampled only if its map is at least three times
   ``min_edge``.
4. An axis gets 3-wide kernels from the first stage where its spacing is within a factor
   2 of the finest spacing, 1-wide (no context across it) before that; once 3, always 3.
5. The loop stops when no axis may be downsampled; the bottleneck gets 3-wide kernels.
   The downsampled spacing doubles and the map halves (rounded up) at each step.

The patch must be divisible by ``2**n`` along an axis downsampled ``n`` times (nnU-Net
pads its planned patch up to that; here the patch is the user's, so a patch that does
not divide is refused, naming the nearest that does).
Feature maps: ``base * 2**stage`` filters per stage, capped at ``max_filters`` (nnU-Net:
32 and 320 in 3D, 512 in 2D).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MIN_EDGE", "Plan", "filters", "plan"]

#: nnU-Net's smallest feature-map edge at the bottleneck.
MIN_EDGE = 4


@dataclass(frozen=True)
class Plan:
    """A planned U-Net: per stage, its kernel size and the stride that reaches it.

    Attributes:
        kernels: one kernel size per stage (the first at full resolution, the last the
            bottleneck).
        strides: one stride per stage (the first ``(1, ...)``: full resolution).
        pools: how often each axis is downsampled.
    """

    kernels: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    pools: tuple[int, ...]

    @property
    def divisor(self) -> tuple[int, ...]:
        """What each axis of an input must be divisible by."""
        return tuple(2**n for n in self.pools)


def plan(
    patch: Sequence[int], spacing: Sequence[float] | None = None, min_edge: int = MIN_EDGE
) -> Plan:
    """The kernels and strides nnU-Net's rule gives ``patch`` at ``spacing`` (mm; default
    isotropic), see the module docstring.

    Raises:
        ValueError: a patch and spacing of different lengths, a value <= 0, or a patch
            not divisible by the planned downsampling (naming the nearest that is).
    """
    dims = len(patch)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * dims
    if len(spacing) != dims or not all(n > 0 for n in patch) or not all(s > 0 for s in spacing):
        raise ValueError(f"patch {tuple(patch)} and spacing {spacing} must be {dims} values > 0")
    size = [float(n) for n in patch]
    current = [float(s) for s in spacing]
    kernel = [1] * dims
    kernels: list[tuple[int, ...]] = []
    strides: list[tuple[int, ...]] = [(1,) * dims]
    pools = [0] * dims
    while True:
        axes = [i for i in range(dims) if size[i] >= 2 * min_edge]
        if not axes:
            break
        finest = min(current[i] for i in axes)
        axes = [i for i in axes if current[i] / finest < 2]
        if len(axes) == 1 and size[axes[0]] < 3 * min_edge:
            break
        smallest = min(current)
        kernel = [3 if k == 3 or current[i] / smallest < 2 else 1 for i, k in enumerate(kernel)]
        kernels.append(tuple(kernel))
        strides.append(tuple(2 if i in axes else 1 for i in range(dims)))
        for i in axes:
            pools[i] += 1
            current[i] *= 2
            size[i] = math.ceil(size[i] / 2)
    kernels.append((3,) * dims)
    result = Plan(tuple(kernels), tuple(strides), tuple(pools))
    if any(n % d for n, d in zip(patch, result.divisor, strict=True)):
        padded = tuple(math.ceil(n / d) * d for n, d in zip(patch, result.divisor, strict=True))
        raise ValueError(
            f"the planned network downsamples the patch {tuple(patch)} by "
            f"{result.divisor}, which does not divide it; use {padded}"
        )
    return result


def filters(stages: int, base: int = 32, max_filters: int = 320) -> tuple[int, ...]:
    """Feature maps per stage: ``base`` doubled per stage, capped at ``max_filters``."""
    return tuple(min(base * 2**i, max_filters) for i in range(stages))
