"""The per-case preprocessing pipeline: read, check, reorient, normalise, crop and fit.

:func:`preprocess_case` turns the files of one case (:class:`~benchbox.data.spec.CaseFiles`)
into the arrays the volume datasets cache and train on; the steps themselves
(orientation, CT window, percentile normalisation, crop, fit) are in
:mod:`benchbox.data.preprocess`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data import io
from benchbox.data.color import to_grey
from benchbox.data.preprocess import (
    Fit,
    Orientation,
    bounding_box,
    ct_window,
    percentile_normalise,
    resample_like,
)
from benchbox.data.spec import CaseFiles, LabelSpec, Preprocessing, default_norm
from benchbox.errors import DataError

__all__ = ["preprocess_case"]


def _as_scalar_volume(img: Any, path: Path) -> Any:
    """A greyscale ``SimpleITK.Image``: colour images become their grey values as
    :func:`benchbox.data.color.to_grey` makes them (alpha dropped, BT.601 luma rounded
    to the file's bit depth)."""
    import SimpleITK as sitk

    if img.GetDimension() not in (2, 3):
        raise DataError(f"{path}: a {img.GetDimension()}D image; expected a 2D or 3D image")
    n = img.GetNumberOfComponentsPerPixel()
    if n == 1:
        return img
    grey = to_grey(sitk.GetArrayFromImage(img), n, path)
    out = sitk.GetImageFromArray(np.ascontiguousarray(grey))
    out.CopyInformation(img)
    return out


def _label_indices(array: np.ndarray, path: Path, spec: LabelSpec) -> tuple[np.ndarray, list[int]]:
    """Label values -> class indices (``uint8``), checking that every value is declared."""
    if array.dtype.kind == "f" and (
        not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array))
    ):
        raise DataError(f"{path}: label file holds non-integer values")
    present = np.unique(array).astype(np.int64)
    unexpected = sorted(set(present.tolist()) - set(spec.values))
    if unexpected:
        shown = ", ".join(str(v) for v in unexpected[:8]) + (", ..." if len(unexpected) > 8 else "")
        expected = ", ".join(str(v) for v in spec.sorted_values)
        raise DataError(f"{path}: unexpected label values {shown} (expected {expected})")
    values = spec.sorted_values
    if len(values) > 255:
        raise DataError(f"{path}: more than 255 label values are not supported")
    lut = np.zeros(max(values) + 1, dtype=np.uint8)
    lut[values] = np.arange(len(values), dtype=np.uint8)
    return lut[array.astype(np.int64)], present.tolist()


def preprocess_case(
    case: CaseFiles,
    modalities: tuple[str, str],
    labels: LabelSpec | None,
    params: Preprocessing,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read, check and preprocess one case.

    Returns:
        ``arrays``: ``a``, ``b`` ``float32 (D, S, S)``; with a label, ``mask`` ``uint8
        (D, S, S)`` and ``source_mask`` ``uint8`` on the source grid (class indices);
        ``meta``: geometry, orientation, crop box, fit and the label values present.

    Raises:
        DataError: a missing, unreadable or truncated file; a 4D or colour-mixed image;
            2D and 3D files mixed; geometry that differs from modality ``a`` (without
            ``resample``); unexpected label values.
    """
    import SimpleITK as sitk

    name_a, name_b = modalities
    ref_path = case.images[name_a]
    reference = _as_scalar_volume(io.read_sitk(ref_path), ref_path)
    ref_geom = io.sitk_geometry(reference)

    def aligned(path: Path, role: str, label: bool = False, default: float = 0.0) -> Any:
        img = io.read_sitk(path)
        if not label:
            img = _as_scalar_volume(img, path)
        elif img.GetNumberOfComponentsPerPixel() != 1:
            raise DataError(f"{path}: {role} must be a single-channel image")
        if img.GetDimension() != reference.GetDimension():
            raise DataError(
                f"case {case.case_id!r}: 2D and 3D files mixed: {ref_path} is "
                f"{reference.GetDimension()}D, {path} is {img.GetDimension()}D"
            )
        diffs = io.compare_geometry(ref_geom, io.sitk_geometry(img), params.geometry_tolerance)
        if diffs:
            if not params.resample:
                raise DataError(
                    f"case {case.case_id!r}: {role} {path} does not match {name_a} {ref_path}: "
                    + "; ".join(diffs)
                    + f" (pass --resample to resample it onto {name_a})"
                )
            img = resample_like(img, reference, label=label, default=default)
        return img

    norm_a = params.norms.get(name_a, default_norm(name_a))
    norm_b = params.norms.get(name_b, default_norm(name_b))
    fill_b = params.ct_window[0] if norm_b == "ct" else 0.0
    other = aligned(case.images[name_b], f"modality {name_b}", default=fill_b)
    arr_a = sitk.GetArrayFromImage(reference).astype(np.float32, copy=False)
    arr_b = sitk.GetArrayFromImage(other).astype(np.float32, copy=False)
    for path, arr in ((ref_path, arr_a), (case.images[name_b], arr_b)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: image holds NaN or infinite values")

    is_2d = reference.GetDimension() == 2
    if is_2d:
        orientation = Orientation.identity(3)
        spacing = (1.0, *ref_geom.spacing)
    else:
        orientation = Orientation.from_direction(ref_geom.direction)
        spacing = orientation.spacing(ref_geom.spacing)

    def canonical(arr: np.ndarray) -> np.ndarray:
        return orientation.apply(arr[None] if is_2d else arr)

    arr_a, arr_b = canonical(arr_a), canonical(arr_b)

    if case.foreground is not None:
        fg_img = aligned(case.foreground, "foreground mask", label=True)
        foreground = canonical(sitk.GetArrayViewFromImage(fg_img)) > 0
        if not foreground.any():
            raise DataError(f"{case.foreground}: foreground mask is empty")
    else:
        foreground = (arr_a != 0) | (arr_b != 0)

    def normalise(arr: np.ndarray, norm: str) -> np.ndarray:
        if norm == "ct":
            return ct_window(arr, *params.ct_window)
        if norm == "mri":
            return percentile_normalise(arr, foreground, *params.percentiles)
        return np.clip(arr, 0.0, 1.0).astype(np.float32)

    arr_a, arr_b = normalise(arr_a, norm_a), normalise(arr_b, norm_b)

    mask: np.ndarray | None = None
    source_mask: np.ndarray | None = None
    present: list[int] = []
    if case.label is not None and labels is not None:
        lab_img = aligned(case.label, "label", label=True)
        source_mask, present = _label_indices(sitk.GetArrayFromImage(lab_img), case.label, labels)
        mask = canonical(source_mask)

    if params.crop:
        box = bounding_box(foreground, params.crop_margin)
    else:
        box = tuple((0, n) for n in arr_a.shape)
    crop = tuple(slice(a, b) for a, b in box)
    fit = Fit.plan(box[1][1] - box[1][0], box[2][1] - box[2][0], params.image_size, params.fit)

    arrays = {
        "a": fit.apply(np.ascontiguousarray(arr_a[crop])),
        "b": fit.apply(np.ascontiguousarray(arr_b[crop])),
    }
    if mask is not None and source_mask is not None:
        arrays["mask"] = fit.apply(np.ascontiguousarray(mask[crop]), label=True)
        arrays["source_mask"] = source_mask
    sy, sx = fit.scale
    meta = {
        "case_id": case.case_id,
        "ndim": 2 if is_2d else 3,
        "reference": ref_geom.to_dict(),
        "orientation": {"perm": list(orientation.perm), "flip": list(orientation.flip)},
        "box": [list(b) for b in box],
        "fit": {
            "source": list(fit.source),
            "resized": list(fit.resized),
            "size": fit.size,
            "offset": list(fit.offset),
        },
        "spacing": [spacing[0], spacing[1] / sy, spacing[2] / sx],
        "label_values_present": present,
        "norms": [norm_a, norm_b],
    }
    return arrays, meta
