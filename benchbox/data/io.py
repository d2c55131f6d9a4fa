"""Reading and writing images with SimpleITK: NIfTI, DICOM series, PNG, TIFF, ...

Arrays come back in SimpleITK's NumPy order, ``(z, y, x)`` for volumes and ``(y, x)``
for 2D images, with the spacing in the same axis order, in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.errors import DataError

#: File endings read as one image each (a folder is read as a DICOM series).
IMAGE_SUFFIXES = (
    ".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".tif", ".tiff", ".jpg", ".jpeg",
    ".bmp", ".dcm",
)


@dataclass
class Image:
    """Pixel data with its physical geometry, axis order ``(z, y, x)`` or ``(y, x)``."""

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    path: Path | None = None

    @property
    def ndim(self) -> int:
        return len(self.spacing)


def strip_suffix(path: Path) -> str:
    """The file name without its image ending (``case.nii.gz`` -> ``case``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def _read_sitk(path: Path) -> Any:
    import SimpleITK as sitk

    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            files = reader.GetGDCMSeriesFileNames(str(path))
            if not files:
                raise DataError(f"{path}: folder holds no DICOM series")
            reader.SetFileNames(files)
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except DataError:
        raise
    except RuntimeError as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip().startswith("Description")), "")
        detail = first.split(":", 1)[-1].strip() or "unreadable image"
        raise DataError(f"{path}: cannot read image ({detail})") from exc


def _flip(values: tuple[float, ...]) -> tuple[float, ...]:
    # SimpleITK gives geometry in (x, y, z) order; arrays are (z, y, x).
    return tuple(float(v) for v in reversed(values))


def read_image(path: str | Path) -> Image:
    """Read one image file, or a folder as a DICOM series.

    Raises:
        DataError: the path is missing, corrupt, or not an image.
    """
    import SimpleITK as sitk

    path = Path(path)
    img = _read_sitk(path)
    array = sitk.GetArrayFromImage(img)
    dim = img.GetDimension()
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    direction = direction[::-1, ::-1]  # to (z, y, x) order like the array
    return Image(
        array=array,
        spacing=_flip(img.GetSpacing()),
        origin=_flip(img.GetOrigin()),
        direction=tuple(float(v) for v in direction.ravel()),
        path=path,
    )


def write_image(
    array: np.ndarray,
    path: str | Path,
    reference: Image | None = None,
    spacing: tuple[float, ...] | None = None,
) -> Path:
    """Write ``array`` to ``path`` (format from the ending) with a reference's geometry."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_vector = array.ndim == 3 and array.shape[-1] in (3, 4) and path.suffix.lower() in (
        ".png", ".tif", ".tiff", ".jpg", ".jpeg")
    img = sitk.GetImageFromArray(array, isVector=is_vector)
    if reference is not None:
        dim = img.GetDimension()
        if reference.ndim != dim:
            raise DataError(f"{path}: a {dim}D image cannot take a {reference.ndim}D geometry")
        img.SetSpacing(_flip(reference.spacing))
        img.SetOrigin(_flip(reference.origin))
        direction = np.asarray(reference.direction).reshape(dim, dim)[::-1, ::-1]
        img.SetDirection(tuple(float(v) for v in direction.ravel()))
    elif spacing is not None:
        img.SetSpacing(_flip(tuple(spacing)))
    sitk.WriteImage(img, str(path), useCompression=path.name.endswith(".gz"))
    return path
