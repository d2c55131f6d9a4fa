"""Folders of result files, matched by case name: what ``benchbox evaluate`` reads.

Files are matched by name without the image ending (``case01.nii.gz`` matches
``case01.nii``; ``c01.png`` matches ``c01.tif``). Reading rules (also in
``docs/metrics.md``):

* label files hold one integer label per voxel (NIfTI, NRRD, PNG, ...);
* fusion images: a colour image becomes the grey image of the field's tools
  (:func:`benchbox.data.color.to_grey`: alpha dropped, BT.601 luma rounded to the
  file's bit depth); 8-bit values are then divided by 255 and 16-bit ones by 65535;
  float images must already lie in ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchbox.data.color import to_grey
from benchbox.errors import DataError

if TYPE_CHECKING:
    from benchbox.data.io import Image


def find_images(folder: str | Path, role: str) -> dict[str, Path]:
    """``{case name: file}`` for the image files of a folder (not recursive).

    Raises:
        DataError: the folder is missing, holds no image, or two files share a case name.
    """
    from benchbox.data.io import is_image_file, strip_suffix

    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{role} folder {path} does not exist")
    found: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        if not is_image_file(file):
            continue
        case = strip_suffix(file)
        if case in found:
            raise DataError(
                f"{role} folder {path}: {found[case].name} and {file.name} are both case {case!r}"
            )
        found[case] = file
    if not found:
        raise DataError(f"{role} folder {path} holds no image file (NIfTI, PNG, TIFF, ...)")
    return found


def _read(path: Path) -> Image:
    from benchbox.data.io import read_image

    return read_image(path)


def read_labels(path: Path) -> tuple[np.ndarray, Image]:
    """A label file as an integer array, and the image it came from."""
    image = _read(path)
    if image.components != 1:
        raise DataError(f"{path}: a label file must have one channel, not {image.components}")
    arr = image.array
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr, image
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: labels must be integers, got {arr.dtype}")
    if not np.isfinite(arr).all():
        kinds = "NaN" if np.isnan(arr).any() else "infinite"
        raise DataError(f"{path}: labels must be integers; the file holds {kinds} values")
    rounded = np.rint(arr)
    if not np.array_equal(rounded, arr):
        raise DataError(f"{path}: labels must be integers; the file holds fractional values")
    return rounded.astype(np.int64), image


def read_fusion_image(path: Path) -> np.ndarray:
    """A 2D image as ``float64`` in ``[0, 1]`` (see the module docstring for the rules)."""
    image = _read(path)
    if image.ndim != 2:
        raise DataError(f"{path}: fusion images must be 2D, this one is {image.ndim}D")
    arr = to_grey(image.array, image.components, path)
    if arr.dtype == np.uint8:
        out = arr / 255.0
    elif arr.dtype == np.uint16:
        out = arr / 65535.0
    elif arr.dtype == bool:
        out = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: the image contains NaN or infinite values")
        if out.min() < 0 or out.max() > 1:
            raise DataError(
                f"{path}: a float image must lie in [0, 1], this one spans "
                f"[{out.min():g}, {out.max():g}]; save 8-bit or rescale it"
            )
    else:
        raise DataError(f"{path}: unsupported pixel type {arr.dtype}; use 8- or 16-bit images")
    return out
