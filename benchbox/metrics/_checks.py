"""Argument checks shared by the metric functions: one clear error naming the argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchbox.errors import MetricInputError
from benchbox.metrics._share import memo

__all__ = [
    "RANGE_SLACK",
    "check_image",
    "check_images",
    "check_mask",
    "check_masks",
    "check_min_size",
    "check_spacing",
    "check_tolerance",
    "to_numpy",
]

#: Values this far outside [0, 1] are float rounding, not a wrongly scaled image.
RANGE_SLACK = 1e-6


def to_numpy(x: Any) -> np.ndarray:
    """An array from a NumPy array, a (CPU or GPU) torch tensor, or a nested sequence."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_image(name: str, x: Any) -> np.ndarray:
    """A 2D ``float64`` copy-free view of ``x`` with finite values in ``[0, 1]``.

    Checked once per object while the metrics of a case share their work
    (:func:`~benchbox.metrics._share.share_computations`).
    """
    return memo("checked-image", (x,), lambda: _check_image(name, x))


def _check_image(name: str, x: Any) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise MetricInputError(
            f"{name} must be a 2D image (H, W), got an array of shape {arr.shape}"
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise MetricInputError(f"{name} must be a float image in [0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):  # min and max propagate NaN
        raise MetricInputError(f"{name} contains NaN or infinite values")
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise MetricInputError(
            f"{name} has values in [{lo:g}, {hi:g}]; fusion metrics need images in [0, 1] "
            "(divide 8-bit images by 255)"
        )
    if lo < 0 or hi > 1:
        arr = np.clip(arr, 0.0, 1.0)
    return arr


def check_images(fused: Any, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a fused image and its two sources: 2D, one shape, finite, in ``[0, 1]``."""
    f, a_, b_ = check_image("fused", fused), check_image("a", a), check_image("b", b)
    for name, arr in (("a", a_), ("b", b_)):
        if arr.shape != f.shape:
            raise MetricInputError(
                f"{name} has shape {arr.shape} but fused has shape {f.shape}; "
                "the images must be registered and of one size"
            )
    return f, a_, b_


def check_min_size(name: str, shape: tuple[int, ...], size: int, metric: str) -> None:
    if min(shape) < size:
        raise MetricInputError(
            f"{metric} needs images of at least {size}x{size} pixels; {name} is "
            f"{'x'.join(map(str, shape))}"
        )


def check_mask(name: str, mask: Any) -> np.ndarray:
    """A boolean view of a binary mask (bool, or numbers that are all 0 or 1)."""
    arr = to_numpy(mask)
    if arr.ndim not in (2, 3):
        raise MetricInputError(f"{name} must be a 2D or 3D mask, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise MetricInputError(f"{name} must be a binary mask, got dtype {arr.dtype}")
    is_zero = arr == 0
    if not (is_zero | (arr == 1)).all():
        found = np.unique(arr[~is_zero])[:5]
        raise MetricInputError(
            f"{name} must be a binary mask (values 0 and 1), found "
            f"{', '.join(f'{v:g}' for v in found)}; select one label or region first"
        )
    return ~is_zero


def check_masks(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two binary masks of one shape, as boolean arrays."""
    p, r = check_mask("pred", pred), check_mask("ref", ref)
    if p.shape != r.shape:
        raise MetricInputError(f"pred has shape {p.shape} but ref has shape {r.shape}")
    return p, r


def check_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """The voxel spacing in mm, one positive finite number per array axis."""
    message = f"spacing must be a sequence of {ndim} numbers (mm per array axis), got {spacing!r}"
    if isinstance(spacing, str) or not isinstance(spacing, Sequence | np.ndarray):
        raise MetricInputError(message)
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise MetricInputError(message) from None
    if len(values) != ndim:
        raise MetricInputError(
            f"spacing has {len(values)} values {values} but the masks have {ndim} axes"
        )
    if not all(np.isfinite(s) and s > 0 for s in values):
        raise MetricInputError(f"spacing must be positive finite mm values, got {values}")
    return values


def check_tolerance(tolerance: Any) -> float:
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise MetricInputError(f"tolerance must be a finite distance >= 0 mm, got {tolerance!r}")
    return value
