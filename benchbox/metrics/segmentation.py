"""Segmentation metrics on binary masks, in 2D and 3D, with the voxel spacing in mm.

Every function takes a predicted mask ``pred`` and a reference mask ``ref`` of one shape
(``bool``, or numbers that are all 0 or 1) and, for the distances, the ``spacing`` in mm
per array axis (in the array's axis order, as :func:`benchbox.data.io.read_image` gives
it). Results are plain finite floats; ``docs/metrics.md`` gives every formula by hand.

Surface definitions, shared by HD, HD95, ASSD and NSD (the ones of MONAI, medpy and
scipy's ``binary_erosion``):

* the *boundary* ``∂M`` of a mask ``M`` is the set of its voxels that have at least one
  face neighbour (4 in 2D, 6 in 3D) outside ``M`` or outside the image;
* ``d(x, ∂M)`` is the Euclidean distance in mm between voxel centres, from ``x`` to the
  nearest voxel of ``∂M``;
* the directed distances ``D(P→R) = {d(p, ∂R) : p ∈ ∂P}`` and ``D(R→P)`` likewise.

Empty masks follow one rule, so that no table ever holds NaN:

* ``pred`` and ``ref`` both empty: Dice, IoU, precision, recall and NSD are 1; HD, HD95
  and ASSD are 0 (a perfect answer to "there is nothing here");
* exactly one of them empty: Dice, IoU, precision, recall and NSD are 0; HD, HD95 and
  ASSD equal the image diagonal ``sqrt(sum((n_i * s_i)^2))`` in mm, larger than any
  distance two voxels of the image can have, so an empty answer is never better than
  a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbox.metrics._checks import check_masks, check_spacing, check_tolerance
from benchbox.metrics._share import memo, share_computations

__all__ = [
    "DEFAULT_NSD_TOLERANCE",
    "SurfaceDistances",
    "boundary",
    "compute_assd",
    "compute_dice",
    "compute_hd",
    "compute_hd95",
    "compute_iou",
    "compute_nsd",
    "compute_precision",
    "compute_recall",
    "image_diagonal",
    "overlap_counts",
    "share_computations",
    "surface_distances",
]

#: The default NSD tolerance in mm (``--nsd-tolerance``).
DEFAULT_NSD_TOLERANCE = 1.0
#: A surface distance this close above the NSD tolerance counts as within it: floating
#: point gives ``3 * 0.9 - 2 * 0.9 = 0.9000000000000001``.
TIE_SLACK = 1e-9


# -- overlap ---------------------------------------------------------------------------
def overlap_counts(pred: Any, ref: Any) -> tuple[int, int, int]:
    """``(TP, FP, FN)``: voxels in both masks, in ``pred`` only, in ``ref`` only."""

    def compute() -> tuple[int, int, int]:
        p, r = check_masks(pred, ref)
        tp = int(np.count_nonzero(p & r))
        return tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(r)) - tp

    return memo("overlap", (pred, ref), compute)


def _ratio(numerator: int, denominator: int, pred_empty: bool, ref_empty: bool) -> float:
    if pred_empty and ref_empty:
        return 1.0
    if pred_empty or ref_empty or denominator == 0:
        return 0.0
    return numerator / denominator


def compute_dice(pred: Any, ref: Any) -> float:
    """Dice similarity coefficient (Sørensen-Dice).

    ``Dice = 2 |P ∩ R| / (|P| + |R|)``, counted in voxels.

    Range ``[0, 1]``, higher is better. Both masks empty: 1; exactly one empty: 0.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.

    Raises:
        MetricInputError: shapes differ, or a mask is not binary.
    """
    tp, fp, fn = overlap_counts(pred, ref)
    return _ratio(2 * tp, 2 * tp + fp + fn, tp + fp == 0, tp + fn == 0)


def compute_iou(pred: Any, ref: Any) -> float:
    """Intersection over union (Jaccard index).

    ``IoU = |P ∩ R| / |P ∪ R| = Dice / (2 - Dice)``.

    Range ``[0, 1]``, higher is better. Both masks empty: 1; exactly one empty: 0.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
    """
    tp, fp, fn = overlap_counts(pred, ref)
    return _ratio(tp, tp + fp + fn, tp + fp == 0, tp + fn == 0)


def compute_precision(pred: Any, ref: Any) -> float:
    """Precision (positive predictive value).

    ``precision = |P ∩ R| / |P|``.

    Range ``[0, 1]``, higher is better. Both masks empty: 1; exactly one empty: 0.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
    """
    tp, fp, fn = overlap_counts(pred, ref)
    return _ratio(tp, tp + fp, tp + fp == 0, tp + fn == 0)


def compute_recall(pred: Any, ref: Any) -> float:
    """Recall (sensitivity, true positive rate).

    ``recall = |P ∩ R| / |R|``.

    Range ``[0, 1]``, higher is better. Both masks empty: 1; exactly one empty: 0.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
    """
    tp, fp, fn = overlap_counts(pred, ref)
    return _ratio(tp, tp + fn, tp + fp == 0, tp + fn == 0)


# -- surfaces --------------------------------------------------------------------------
def boundary(mask: np.ndarray) -> np.ndarray:
    """The voxels of a boolean mask with a face neighbour outside the mask or the image.

    Equal to ``mask & ~scipy.ndimage.binary_erosion(mask)`` (cross-shaped structuring
    element, ``border_value=0``), written with slices because it is several times faster.
    """
    interior = mask.copy()
    nd = mask.ndim
    for axis in range(nd):

        def along(s: slice, axis: int = axis) -> tuple[slice, ...]:
            return tuple(s if i == axis else slice(None) for i in range(nd))

        interior[along(slice(0, 1))] = False
        interior[along(slice(-1, None))] = False
        interior[along(slice(1, -1))] &= mask[along(slice(None, -2))]
        interior[along(slice(1, -1))] &= mask[along(slice(2, None))]
    return mask & ~interior


def image_diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The diagonal of the image box in mm, ``sqrt(sum((n_i * s_i)^2))``."""
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding ``mask``, grown by one voxel where the image allows.

    Each axis is searched within the extent already found along the previous ones, so
    only the first pass reads the whole image.
    """
    box = []
    view = mask
    for axis in range(mask.ndim):
        others = tuple(i for i in range(mask.ndim) if i != axis)
        hit = np.flatnonzero(np.any(view, axis=others))
        lo, hi = int(hit[0]), int(hit[-1]) + 1
        box.append(slice(max(lo - 1, 0), min(hi + 1, mask.shape[axis])))
        view = view[(slice(None),) * axis + (slice(lo, hi),)]
    return tuple(box)


@dataclass(frozen=True)
class SurfaceDistances:
    """The directed boundary-to-boundary distances of a mask pair, in mm.

    Attributes:
        pred_to_ref: ``d(p, ∂R)`` for every boundary voxel ``p`` of ``pred`` (any order).
        ref_to_pred: ``d(r, ∂P)`` for every boundary voxel ``r`` of ``ref``.
        pred_empty: ``pred`` has no voxel (then both arrays are empty).
        ref_empty: ``ref`` has no voxel (then both arrays are empty).
        diagonal: the image diagonal in mm, the distance given to one empty mask.
    """

    pred_to_ref: np.ndarray
    ref_to_pred: np.ndarray
    pred_empty: bool
    ref_empty: bool
    diagonal: float

    @property
    def empty_value(self) -> float | None:
        """The distance an empty-mask rule gives (0 or the diagonal), else ``None``."""
        if self.pred_empty and self.ref_empty:
            return 0.0
        if self.pred_empty or self.ref_empty:
            return self.diagonal
        return None


def surface_distances(pred: Any, ref: Any, spacing: Any) -> SurfaceDistances:
    """The directed boundary distances between two masks (see the module docstring).

    The masks are cropped to the bounding box of their union (grown by one voxel, so the
    boundaries are unchanged). Each boundary voxel then looks for the other boundary at
    the voxel offsets within ``NEAR_RADIUS`` smallest voxel sides, nearest offset first;
    the few voxels farther away than that get a nearest-neighbour query in a k-d tree
    of the other boundary's voxel centres in mm. Both steps are exact, like a Euclidean
    distance transform with ``sampling=spacing``, and on tumour-sized 3D masks several
    times faster (``benchmarks/metrics_speed.py`` measures the alternatives).

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per array axis.

    Raises:
        MetricInputError: shapes differ, a mask is not binary, or the spacing is invalid.
    """
    try:
        key = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        key = None  # invalid: the checks report it
    if key is None:
        return _surface_distances(pred, ref, spacing)
    return memo("surface", (pred, ref), lambda: _surface_distances(pred, ref, spacing), key)


#: The neighbourhood searched voxel by voxel before the k-d tree, in multiples of the
#: smallest voxel side: most boundary voxels of a fair prediction lie this close.
NEAR_RADIUS = 3.0


def _near_offsets(spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every voxel offset within ``NEAR_RADIUS * min(spacing)`` mm, nearest first."""
    radius = NEAR_RADIUS * min(spacing)
    reach = [int(radius // s) for s in spacing]
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    dist = np.sqrt(((offsets * np.asarray(spacing)) ** 2).sum(axis=1))
    keep = dist <= radius
    order = np.argsort(dist[keep], kind="stable")
    return offsets[keep][order], dist[keep][order]


def _nearest(
    sources: np.ndarray,
    targets: np.ndarray,
    target_mask: np.ndarray,
    offsets: np.ndarray,
    dist: np.ndarray,
    spacing: tuple[float, ...],
) -> np.ndarray:
    """Distance in mm from each source voxel to the nearest target voxel, exactly.

    ``sources`` and ``targets`` are flat indices into ``target_mask``, which is padded
    so that every offset stays inside it. The offsets, nearest first, settle each source
    whose nearest target lies within their radius: the first offset that meets a target
    is the nearest one. The rest (far from every target) go to a k-d tree.
    """
    from scipy.spatial import KDTree

    flat_mask = target_mask.ravel()
    strides = np.asarray([s // target_mask.itemsize for s in target_mask.strides])
    out = np.empty(len(sources))
    todo = np.arange(len(sources))
    for step, d in zip(offsets @ strides, dist, strict=True):
        hit = flat_mask[sources[todo] + step]
        if hit.any():
            out[todo[hit]] = d
            todo = todo[~hit]
            if not todo.size:
                return out
    scale = np.asarray(spacing)
    far = np.stack(np.unravel_index(sources[todo], target_mask.shape), axis=1) * scale
    points = np.stack(np.unravel_index(targets, target_mask.shape), axis=1) * scale
    tree = KDTree(points, leafsize=32, balanced_tree=False, compact_nodes=False)
    out[todo] = tree.query(far)[0]
    return out


def _surface_distances(pred: Any, ref: Any, spacing: Any) -> SurfaceDistances:
    p, r = check_masks(pred, ref)
    sp = check_spacing(spacing, p.ndim)
    diagonal = image_diagonal(p.shape, sp)
    p_empty, r_empty = not p.any(), not r.any()
    if p_empty or r_empty:
        return SurfaceDistances(np.zeros(0), np.zeros(0), p_empty, r_empty, diagonal)

    offsets, dist = _near_offsets(sp)
    pad = [(int(n), int(n)) for n in np.abs(offsets).max(axis=0)]
    box = _bounding_box(p | r)
    bp = np.pad(boundary(p[box]), pad)
    br = np.pad(boundary(r[box]), pad)
    idx_p, idx_r = np.flatnonzero(bp), np.flatnonzero(br)
    return SurfaceDistances(
        _nearest(idx_p, idx_r, br, offsets, dist, sp),
        _nearest(idx_r, idx_p, bp, offsets, dist, sp),
        False,
        False,
        diagonal,
    )


def compute_hd(pred: Any, ref: Any, spacing: Any) -> float:
    """Hausdorff distance between the mask boundaries, in mm.

    ``HD = max(max D(P→R), max D(R→P))``.

    Range ``[0, image diagonal]``, lower is better. Both masks empty: 0; exactly one
    empty: the image diagonal in mm.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per array axis.
    """
    sd = surface_distances(pred, ref, spacing)
    if sd.empty_value is not None:
        return sd.empty_value
    return float(max(sd.pred_to_ref.max(), sd.ref_to_pred.max()))


def compute_hd95(pred: Any, ref: Any, spacing: Any) -> float:
    """95th-percentile Hausdorff distance, in mm: the larger directed 95th percentile.

    ``HD95 = max(P95(D(P→R)), P95(D(R→P)))`` with ``P95`` the 95th percentile with
    linear interpolation (``numpy.percentile``'s default), as MONAI and DeepMind's
    surface-distance compute it. medpy pools both sets into one percentile instead,
    which can only give a value less than or equal to this one.

    Range ``[0, image diagonal]``, lower is better. Both masks empty: 0; exactly one
    empty: the image diagonal in mm.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per array axis.
    """
    sd = surface_distances(pred, ref, spacing)
    if sd.empty_value is not None:
        return sd.empty_value
    return float(max(np.percentile(sd.pred_to_ref, 95), np.percentile(sd.ref_to_pred, 95)))


def compute_assd(pred: Any, ref: Any, spacing: Any) -> float:
    """Average symmetric surface distance, in mm.

    ``ASSD = (sum D(P→R) + sum D(R→P)) / (|∂P| + |∂R|)``: the mean over all boundary
    voxels of both masks (as MONAI with ``symmetric=True`` and medpy's ``assd``).

    Range ``[0, image diagonal]``, lower is better. Both masks empty: 0; exactly one
    empty: the image diagonal in mm.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per array axis.
    """
    sd = surface_distances(pred, ref, spacing)
    if sd.empty_value is not None:
        return sd.empty_value
    total = sd.pred_to_ref.sum() + sd.ref_to_pred.sum()
    return float(total / (sd.pred_to_ref.size + sd.ref_to_pred.size))


def compute_nsd(
    pred: Any, ref: Any, spacing: Any, tolerance: float = DEFAULT_NSD_TOLERANCE
) -> float:
    """Normalised surface distance (surface Dice) at a tolerance in mm.

    ``NSD = (|{p ∈ ∂P : d(p, ∂R) ≤ τ}| + |{r ∈ ∂R : d(r, ∂P) ≤ τ}|) / (|∂P| + |∂R|)``,
    counting boundary voxels (MONAI's ``compute_surface_dice`` with
    ``use_subvoxels=False``; Nikolov et al. 2021 weight by surface area instead).

    Range ``[0, 1]``, higher is better. Both masks empty: 1; exactly one empty: 0.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per array axis.
        tolerance: ``τ`` in mm, the distance within which a boundary voxel counts as
            correct.
    """
    tol = check_tolerance(tolerance)
    sd = surface_distances(pred, ref, spacing)
    if sd.pred_empty or sd.ref_empty:
        return 1.0 if sd.pred_empty and sd.ref_empty else 0.0
    limit = tol + TIE_SLACK
    within = np.count_nonzero(sd.pred_to_ref <= limit) + np.count_nonzero(sd.ref_to_pred <= limit)
    return float(within / (sd.pred_to_ref.size + sd.ref_to_pred.size))
