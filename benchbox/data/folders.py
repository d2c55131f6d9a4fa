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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchbox.data.color import to_grey
from benchbox.errors import DataError

if TYPE_CHECKING:
    from benchbox.data.io import Image

__all__ = [
    "LabelCensus",
    "find_images",
    "labels_in",
    "match_cases",
    "read_fusion_image",
    "read_labels",
]


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


def _shown(names: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def match_cases(
    expected: Mapping[str, Path],
    found: Mapping[str, Path],
    *,
    role: str,
    folder: Path,
    what: str,
    allow_missing: bool = False,
) -> tuple[list[str], list[str], list[str]]:
    """Match result files to the cases that should have one.

    Args:
        expected: ``{case: file}`` of the cases (references, or sources).
        found: ``{case: file}`` of the result folder (predictions, fused images).
        role: the result folder's option (``--pred``), for messages.
        folder: the result folder, for messages.
        what: what defines the cases (``reference``), for messages.
        allow_missing: score the cases that have a result and report the others,
            instead of failing.

    Returns:
        ``(cases to score, missing cases, notes)``, sorted; results without an
        expected case are ignored with a note.

    Raises:
        DataError: cases without a result (unless ``allow_missing``), or none at all.
    """
    missing = sorted(set(expected) - set(found))
    cases = sorted(set(expected) & set(found))
    hint = "" if allow_missing else " (--allow-missing scores the others and lists these)"
    if missing and (not allow_missing or not cases):
        raise DataError(
            f"{role} folder {folder} has no file for {len(missing)} of {len(expected)} "
            f"{what} case(s): {_shown(missing)}{hint}"
        )
    notes = []
    extra = sorted(set(found) - set(expected))
    if extra:
        notes.append(f"{len(extra)} file(s) in {role} without a {what} ignored: {_shown(extra)}")
    return cases, missing, notes


def labels_in(array: np.ndarray) -> list[int]:
    """The distinct values of an integer label array (a counting pass when it can)."""
    flat = np.asarray(array).ravel()
    if flat.size == 0:
        return []
    if flat.dtype == bool:
        flat = flat.astype(np.uint8)
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi < 1 << 16:
        return np.flatnonzero(np.bincount(flat, minlength=hi + 1)).tolist()
    return np.unique(flat).astype(np.int64).tolist()


class LabelCensus:
    """Which label files hold which labels, to check the regions against them."""

    def __init__(self) -> None:
        self.files: dict[int, list[Path]] = {}

    def add(self, array: np.ndarray, path: Path) -> None:
        for value in labels_in(array):
            self.files.setdefault(int(value), []).append(path)

    def check(self, regions: Mapping[str, Sequence[int]], strict: bool = False) -> list[str]:
        """Refuse regions no file holds; name labels that no region covers.

        Args:
            regions: ``{name: labels}`` being scored.
            strict: the regions declare every label the files may hold (a preset such
                as ``brats``), so another label is an error, not a note.

        Returns:
            A note naming labels outside every region (scored as background).

        Raises:
            DataError: a region whose labels are in no file (every case would score as
                two empty masks), or, with ``strict``, a label outside the regions.
        """
        found = sorted(v for v in self.files if v != 0)
        absent = [
            f"{name} ({', '.join(map(str, labels))})"
            for name, labels in regions.items()
            if not any(v in self.files for v in labels)
        ]
        if absent:
            raise DataError(
                f"region(s) {'; '.join(absent)} hold no voxel in any reference or prediction "
                f"file (labels found: {', '.join(map(str, found)) or 'none'}); every case "
                "would score as two empty masks"
            )
        covered = {int(v) for labels in regions.values() for v in labels} | {0}
        unknown = [v for v in found if v not in covered]
        if not unknown:
            return []
        where = "; ".join(
            f"label {v} in {self.files[v][0]}"
            + (f" and {len(self.files[v]) - 1} more file(s)" if len(self.files[v]) > 1 else "")
            for v in unknown[:5]
        )
        covers = ", ".join(map(str, sorted(covered - {0})))
        if strict:
            raise DataError(f"{where}: outside the regions' labels ({covers})")
        return [f"{where}: in no region (regions cover {covers}), scored as background"]
