"""Preprocessing of real scans into training slices, and the way back to the scan's grid.

The steps, in the order :mod:`benchbox.data.pipeline` applies them to one case:

1. geometry: every modality and the label must share the reference modality's voxel
   grid (:func:`benchbox.data.io.compare_geometry`), or be resampled onto it
   (:func:`resample_like`) when the user asks for it;
2. orientation: the volume is permuted and flipped so that array axes are
   ``(inferior->superior, anterior->posterior, right->left)`` (:class:`Orientation`),
   which makes axis 0 the axial one whatever the file's storage order;
3. intensities: CT through a HU window (:func:`ct_window`), MRI by robust percentiles
   (:func:`percentile_normalise`), both to ``[0, 1]``;
4. foreground crop (:func:`bounding_box`), then the in-plane fit to the training size:
   resize (keeping the aspect ratio) and pad (:class:`Fit`);
5. axial slice sampling with a share of lesion-bearing slices (:func:`sample_slices`).

:class:`Restorer` undoes 4 and 2 for a predicted label volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbox.errors import ConfigError

__all__ = [
    "Fit",
    "Orientation",
    "Restorer",
    "bounding_box",
    "ct_window",
    "percentile_normalise",
    "resample_like",
    "resize_stack",
    "sample_slices",
]


# -- orientation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Orientation:
    """The axis permutation and flips from a file's storage order to the canonical one.

    Canonical array axis ``k`` runs along the physical (LPS) axis ``k`` of ``(z, y, x)``
    in increasing coordinates: slices go inferior to superior, rows anterior to
    posterior, columns right to left (the radiological view).

    Attributes:
        perm: canonical axis ``k`` is source axis ``perm[k]``.
        flip: whether canonical axis ``k`` is reversed after the permutation.
    """

    perm: tuple[int, ...]
    flip: tuple[bool, ...]

    @classmethod
    def identity(cls, ndim: int) -> Orientation:
        return cls(tuple(range(ndim)), (False,) * ndim)

    @classmethod
    def from_direction(cls, direction: Sequence[float]) -> Orientation:
        """From direction cosines in array axis order (:class:`benchbox.data.io.Geometry`)."""
        ndim = round(len(direction) ** 0.5)
        mat = np.asarray(direction, dtype=float).reshape(ndim, ndim)
        # Greedy assignment by the largest cosine, so oblique scans get a unique axis each.
        perm = [-1] * ndim
        used: set[int] = set()
        for flat in np.argsort(-np.abs(mat), axis=None):
            phys, axis = divmod(int(flat), ndim)
            if perm[phys] == -1 and axis not in used:
                perm[phys] = axis
                used.add(axis)
        flip = tuple(bool(mat[k, perm[k]] < 0) for k in range(ndim))
        return cls(tuple(perm), flip)

    @property
    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm))) and not any(self.flip)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Source-order array (extra trailing axes allowed) to canonical order."""
        n = len(self.perm)
        out = array.transpose(*self.perm, *range(n, array.ndim))
        axes = tuple(k for k in range(n) if self.flip[k])
        return np.flip(out, axes) if axes else out

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Canonical-order array back to the source storage order."""
        n = len(self.perm)
        axes = tuple(k for k in range(n) if self.flip[k])
        out = np.flip(array, axes) if axes else array
        inverse = tuple(int(i) for i in np.argsort(self.perm))
        return out.transpose(*inverse, *range(n, array.ndim))

    def spacing(self, spacing: Sequence[float]) -> tuple[float, ...]:
        return tuple(float(spacing[p]) for p in self.perm)

    def shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(shape[p]) for p in self.perm)


# -- geometry -------------------------------------------------------------------------
def resample_like(image: Any, reference: Any, label: bool = False, default: float = 0.0) -> Any:
    """Resample a ``SimpleITK.Image`` onto ``reference``'s voxel grid (physical space).

    Linear interpolation for intensities, nearest neighbour for labels; points outside
    the moving image get ``default``.
    """
    import SimpleITK as sitk

    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    pixel = image.GetPixelID() if label else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interp, float(default), pixel)


# -- intensities ----------------------------------------------------------------------
def ct_window(array: np.ndarray, low: float = -1000.0, high: float = 1000.0) -> np.ndarray:
    """Map Hounsfield units linearly from ``[low, high]`` to ``[0, 1]``, clipping outside."""
    if not high > low:
        raise ConfigError(f"CT window must have low < high, got ({low}, {high})")
    out = (np.asarray(array, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def percentile_normalise(
    array: np.ndarray,
    mask: np.ndarray | None = None,
    lower: float = 0.5,
    upper: float = 99.5,
) -> np.ndarray:
    """Map the ``lower``..``upper`` percentiles of ``array`` to ``[0, 1]``, clipping.

    Args:
        array: an intensity volume (MRI, any scale).
        mask: the voxels whose percentiles count (the foreground); voxels outside it
            are set to 0, so a z-scored volume's zero background stays black. ``None``
            uses every voxel.
        lower, upper: percentiles in ``[0, 100]``, ``lower < upper``.

    Returns:
        ``float32`` array in ``[0, 1]``; all zeros when the masked voxels are constant.
    """
    if not 0 <= lower < upper <= 100:
        raise ConfigError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}"
        )
    arr = np.asarray(array, dtype=np.float32)
    values = arr[mask] if mask is not None else arr.ravel()
    if values.size == 0:
        return np.zeros_like(arr)
    lo, hi = np.percentile(values, [lower, upper])
    if not hi > lo:
        return np.zeros_like(arr)
    out = (arr - np.float32(lo)) / np.float32(hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    if mask is not None:
        out[~mask] = 0.0
    return out


# -- crop -----------------------------------------------------------------------------
def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` per axis of the ``True`` voxels, grown by ``margin``, clipped.

    An empty mask gives the whole array.
    """
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return tuple((0, n) for n in mask.shape)
        box.append(
            (max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis]))
        )
    return tuple(box)


# -- fit to the training size ---------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    """How an ``(h, w)`` crop becomes a ``size x size`` slice: resize, then centre pad.

    Attributes:
        source: the crop's ``(h, w)``.
        resized: its size after scaling, at most ``size`` on each side.
        size: the training size.
        offset: ``(top, left)`` of the resized crop in the padded slice.
    """

    source: tuple[int, int]
    resized: tuple[int, int]
    size: int
    offset: tuple[int, int]

    @classmethod
    def plan(cls, h: int, w: int, size: int, mode: str = "resize") -> Fit:
        """``mode="resize"`` scales the longer side to ``size``; ``"pad"`` only pads,
        scaling down only a crop larger than ``size``."""
        if mode not in ("resize", "pad"):
            raise ConfigError(f"fit must be 'resize' or 'pad', not {mode!r}")
        scale = size / max(h, w)
        if mode == "pad":
            scale = min(scale, 1.0)
        rh, rw = (max(1, min(size, round(n * scale))) for n in (h, w))
        return cls((h, w), (rh, rw), size, ((size - rh) // 2, (size - rw) // 2))

    @property
    def scale(self) -> tuple[float, float]:
        """Resized over source length per axis (pixel size divides by it)."""
        return self.resized[0] / self.source[0], self.resized[1] / self.source[1]

    def apply(self, stack: np.ndarray, label: bool = False) -> np.ndarray:
        """``(D, h, w)`` (or ``(D, C, h, w)``) to ``(D, size, size)``, zero padded."""
        out_shape = (*stack.shape[:-2], self.size, self.size)
        out = np.zeros(out_shape, dtype=stack.dtype)
        top, left = self.offset
        rh, rw = self.resized
        out[..., top : top + rh, left : left + rw] = resize_stack(stack, (rh, rw), label)
        return out

    def invert(self, stack: np.ndarray, label: bool = True) -> np.ndarray:
        """``(D, size, size)`` (or ``(D, K, size, size)``) back to ``(D, h, w)``."""
        top, left = self.offset
        rh, rw = self.resized
        return resize_stack(stack[..., top : top + rh, left : left + rw], self.source, label)


def resize_stack(stack: np.ndarray, size: tuple[int, int], label: bool = False) -> np.ndarray:
    """Resize the last two axes: bilinear with antialiasing, or nearest for labels."""
    if tuple(stack.shape[-2:]) == tuple(size):
        return np.array(stack, copy=True)
    import torch
    import torch.nn.functional as F

    lead = stack.shape[:-2]
    flat = np.ascontiguousarray(stack).reshape(-1, 1, *stack.shape[-2:])
    if label:
        t = torch.from_numpy(flat.astype(np.float32, copy=False))
        out = F.interpolate(t, size=size, mode="nearest-exact")
        res = out.numpy().astype(stack.dtype)
    else:
        t = torch.from_numpy(flat.astype(np.float32, copy=False))
        down = size[0] < stack.shape[-2] or size[1] < stack.shape[-1]
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=down)
        res = out.numpy().clip(0.0, 1.0).astype(stack.dtype, copy=False)
    return res.reshape(*lead, *size)


# -- back to the source grid ----------------------------------------------------------
@dataclass(frozen=True)
class Restorer:
    """Maps a prediction on the preprocessed grid back onto the source scan's grid.

    Attributes:
        source_shape: the source array's shape in storage order.
        orientation: storage order -> canonical order.
        box: the crop, ``(start, stop)`` per canonical axis.
        fit: the in-plane fit of the crop.
    """

    source_shape: tuple[int, ...]
    orientation: Orientation
    box: tuple[tuple[int, int], ...]
    fit: Fit

    def __call__(self, prediction: np.ndarray) -> np.ndarray:
        """Restore ``(D, S, S)`` class indices (nearest) or ``(D, K, S, S)`` scores
        (bilinear, then argmax) to the source grid; voxels outside the crop are 0."""
        pred = np.asarray(prediction)
        depth = self.box[0][1] - self.box[0][0]
        scores = pred.ndim == 4
        if pred.shape[0] != depth or pred.shape[-2:] != (self.fit.size, self.fit.size):
            expected = f"({depth}, {self.fit.size}, {self.fit.size})"
            raise ValueError(f"prediction of shape {pred.shape} does not match {expected}")
        if scores:
            crop = self.fit.invert(pred.astype(np.float32), label=False).argmax(axis=1)
        else:
            crop = self.fit.invert(pred.astype(np.int64), label=True)
        canonical = np.zeros(self.orientation.shape(self.source_shape), dtype=np.int64)
        canonical[tuple(slice(a, b) for a, b in self.box)] = crop
        return np.ascontiguousarray(self.orientation.invert(canonical))

    def image(self, values: np.ndarray) -> np.ndarray:
        """Restore a ``(D, S, S)`` image in ``[0, 1]`` (e.g. a fused image) to the
        source grid: bilinear in-plane, 0 outside the crop, ``float32``."""
        vals = np.asarray(values, dtype=np.float32)
        depth = self.box[0][1] - self.box[0][0]
        if vals.shape != (depth, self.fit.size, self.fit.size):
            expected = f"({depth}, {self.fit.size}, {self.fit.size})"
            raise ValueError(f"image of shape {vals.shape} does not match {expected}")
        canonical = np.zeros(self.orientation.shape(self.source_shape), dtype=np.float32)
        canonical[tuple(slice(a, b) for a, b in self.box)] = self.fit.invert(vals, label=False)
        return np.ascontiguousarray(self.orientation.invert(canonical))


# -- slice sampling -------------------------------------------------------------------
def sample_slices(
    lesion: np.ndarray,
    rng: np.random.Generator,
    per_case: int = 0,
    lesion_fraction: float | None = None,
) -> np.ndarray:
    """Choose training slices of one case: indices into ``lesion``, sorted.

    Args:
        lesion: ``bool (D,)``, whether each slice holds a lesion (any foreground label).
        rng: the random stream (seeded by the run seed and the case).
        per_case: how many slices to take; ``0`` takes as many as ``lesion_fraction``
            allows (all slices when it is ``None``).
        lesion_fraction: the share of lesion-bearing slices among those taken;
            ``None`` keeps the case's natural share.

    Returns:
        ``int64`` indices; fewer than ``per_case`` when the case has too few slices.
    """
    lesion = np.asarray(lesion, dtype=bool)
    if per_case < 0:
        raise ConfigError(f"slices_per_case must be >= 0, got {per_case}")
    pos, neg = np.flatnonzero(lesion), np.flatnonzero(~lesion)
    if lesion_fraction is None:
        n = len(lesion) if per_case == 0 else min(per_case, len(lesion))
        return np.sort(rng.choice(len(lesion), size=n, replace=False)).astype(np.int64)
    if not 0 <= lesion_fraction <= 1:
        raise ConfigError(f"lesion_fraction must be within [0, 1], got {lesion_fraction}")
    if per_case == 0:
        # The most slices that keep the share: the scarcer kind is used up.
        limits = []
        if lesion_fraction > 0:
            limits.append(len(pos) / lesion_fraction)
        if lesion_fraction < 1:
            limits.append(len(neg) / (1 - lesion_fraction))
        total = int(np.floor(min(limits) + 1e-9))
    else:
        total = per_case
    n_pos = min(len(pos), round(total * lesion_fraction))
    n_neg = min(len(neg), total - n_pos)
    if per_case and n_pos + n_neg < total:  # one kind is short: fill with the other
        n_pos = min(len(pos), total - n_neg)
    chosen = np.concatenate(
        [rng.choice(pos, size=n_pos, replace=False), rng.choice(neg, size=n_neg, replace=False)]
    )
    return np.sort(chosen).astype(np.int64)
