"""Reading and writing images with SimpleITK: NIfTI, DICOM series, PNG, TIFF, ...

Arrays come back in SimpleITK's NumPy order, ``(z, y, x)`` for volumes and ``(y, x)``
for 2D images, with the spacing in the same axis order, in mm. A folder is read as a
DICOM series (SimpleITK's ``ImageSeriesReader``) wherever a file is accepted.

:class:`Geometry` is an image's voxel grid in physical space; :func:`compare_geometry`
lists how two grids differ and :func:`save_prediction` writes a label volume on the grid
of the scan it was predicted from, so that it overlays the scan in ITK-SNAP or Slicer.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.data import niftifile
from benchbox.errors import DataError, WriteError
from benchbox.records.atomic import atomic_path, write_error

if TYPE_CHECKING:
    from benchbox.data.base import Volume

__all__ = [
    "IMAGE_SUFFIXES",
    "Geometry",
    "Image",
    "apply_geometry",
    "check_nifti_complete",
    "compare_geometry",
    "dicom_files",
    "image_from_sitk",
    "is_image_file",
    "is_image_path",
    "read_geometry",
    "read_image",
    "read_sitk",
    "save_prediction",
    "sitk_geometry",
    "strip_suffix",
    "write_image",
]

#: File endings read as one image each (a folder is read as a DICOM series).
IMAGE_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".mha",
    ".mhd",
    ".png",
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".dcm",
)


@dataclass(frozen=True)
class Geometry:
    """A voxel grid in physical space, axis order ``(z, y, x)`` or ``(y, x)`` like arrays.

    Attributes:
        shape: the array shape (spatial axes only).
        spacing: voxel size in mm per axis.
        origin: physical position (mm) of the first voxel's centre, per axis.
        direction: row-major ``ndim x ndim`` direction cosines; column ``j`` is the
            physical direction of array axis ``j``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        return cls(
            tuple(int(v) for v in data["shape"]),
            tuple(float(v) for v in data["spacing"]),
            tuple(float(v) for v in data["origin"]),
            tuple(float(v) for v in data["direction"]),
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

    @property
    def components(self) -> int:
        """Values per pixel: 1 for greyscale, 3 for RGB (a trailing array axis)."""
        return 1 if self.array.ndim == self.ndim else int(self.array.shape[-1])

    @property
    def geometry(self) -> Geometry:
        return Geometry(
            tuple(int(n) for n in self.array.shape[: self.ndim]),
            self.spacing,
            self.origin,
            self.direction,
        )


def strip_suffix(path: Path) -> str:
    """The file name without its image ending (``case.nii.gz`` -> ``case``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def is_image_path(path: Path) -> bool:
    """An image file, or a folder that may hold a DICOM series."""
    return is_image_file(path) or (path.is_dir() and any(p.is_file() for p in path.iterdir()))


def dicom_files(folder: Path) -> list[str]:
    """The files of the one DICOM series in ``folder``, in slice order.

    Raises:
        DataError: the folder holds no series, or several (which one would be ambiguous).
    """
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise DataError(f"{folder}: folder holds no DICOM series")
    if len(ids) > 1:
        raise DataError(
            f"{folder}: folder holds {len(ids)} DICOM series ({', '.join(ids[:3])}"
            f"{', ...' if len(ids) > 3 else ''}); put each series in its own folder"
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    if not files:
        raise DataError(f"{folder}: folder holds no DICOM series")
    return list(files)


#: Raise if a NIfTI file is truncated (see :mod:`benchbox.data.niftifile`).
check_nifti_complete = niftifile.check_complete


def _read_grey_alpha_png(path: Path) -> Any:
    """A grey+alpha PNG (which ITK cannot read) as a 2-component image, via Pillow.

    Returns ``None`` when the file is not such a PNG.
    """
    if path.suffix.lower() != ".png":
        return None
    import SimpleITK as sitk

    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            if im.mode not in ("LA", "La"):
                return None
            array = np.asarray(im.convert("LA"))
    except (ImportError, OSError, ValueError):
        return None
    return sitk.GetImageFromArray(array, isVector=True)


def read_sitk(path: str | Path) -> Any:
    """Read a file, or a folder as a DICOM series, as a ``SimpleITK.Image``.

    A grey+alpha PNG, which ITK does not read, is read with Pillow (2 components); the
    NaN and infinite voxels of a float NIfTI, which ITK reads as 0, are kept.

    Raises:
        DataError: the path is missing, truncated, corrupt, or not an image.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(dicom_files(path))
            return reader.Execute()
        niftifile.check_complete(path)
        return niftifile.restore_non_finite(sitk.ReadImage(str(path)), path)
    except DataError:
        raise
    except RuntimeError as exc:
        fallback = _read_grey_alpha_png(path)
        if fallback is not None:
            return fallback
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = next((ln for ln in lines if ln.startswith("Description")), "")
        detail = first.split(":", 1)[-1].strip()
        if not detail:
            detail = next((ln.split("ERROR:", 1)[-1].strip() for ln in lines if "ERROR:" in ln), "")
        raise DataError(f"{path}: cannot read image ({detail or 'unreadable image'})") from exc


_read_sitk = read_sitk


def _flip(values: Sequence[float]) -> tuple[float, ...]:
    # SimpleITK gives geometry in (x, y, z) order; arrays are (z, y, x).
    return tuple(float(v) for v in reversed(values))


def sitk_geometry(img: Any) -> Geometry:
    """The :class:`Geometry` of a ``SimpleITK.Image``, in array axis order."""
    dim = img.GetDimension()
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)[::-1, ::-1]
    return Geometry(
        shape=tuple(int(n) for n in reversed(img.GetSize())),
        spacing=_flip(img.GetSpacing()),
        origin=_flip(img.GetOrigin()),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def apply_geometry(img: Any, geometry: Geometry | Image) -> None:
    """Set a ``SimpleITK.Image``'s spacing, origin and direction from ``geometry``."""
    dim = img.GetDimension()
    img.SetSpacing(_flip(geometry.spacing))
    img.SetOrigin(_flip(geometry.origin))
    direction = np.asarray(geometry.direction, dtype=float).reshape(dim, dim)[::-1, ::-1]
    img.SetDirection(tuple(float(v) for v in direction.ravel()))


def image_from_sitk(img: Any, path: Path | None = None) -> Image:
    """Convert a ``SimpleITK.Image`` to an :class:`Image` (array in ``(z, y, x)`` order)."""
    import SimpleITK as sitk

    geom = sitk_geometry(img)
    return Image(
        array=sitk.GetArrayFromImage(img),
        spacing=geom.spacing,
        origin=geom.origin,
        direction=geom.direction,
        path=path,
    )


def read_image(path: str | Path) -> Image:
    """Read one image file, or a folder as a DICOM series.

    Raises:
        DataError: the path is missing, truncated, corrupt, or not an image.
    """
    path = Path(path)
    return image_from_sitk(read_sitk(path), path)


def read_geometry(path: str | Path) -> tuple[Geometry, int]:
    """The geometry and the number of components of an image, reading only its header.

    Raises:
        DataError: the path is missing or not a readable image.
    """
    import SimpleITK as sitk

    path = Path(path)
    if path.is_dir():
        img = read_sitk(path)
        return sitk_geometry(img), img.GetNumberOfComponentsPerPixel()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        fallback = _read_grey_alpha_png(path)
        if fallback is not None:
            return sitk_geometry(fallback), fallback.GetNumberOfComponentsPerPixel()
        raise DataError(f"{path}: cannot read image header") from exc
    dim = reader.GetDimension()
    direction = np.asarray(reader.GetDirection(), dtype=float).reshape(dim, dim)[::-1, ::-1]
    geom = Geometry(
        shape=tuple(int(n) for n in reversed(reader.GetSize())),
        spacing=_flip(reader.GetSpacing()),
        origin=_flip(reader.GetOrigin()),
        direction=tuple(float(v) for v in direction.ravel()),
    )
    return geom, reader.GetNumberOfComponents()


def compare_geometry(reference: Geometry, other: Geometry, tolerance: float = 1e-3) -> list[str]:
    """How ``other``'s voxel grid differs from ``reference``'s; empty when they match.

    Sizes must be equal. Spacings may differ by a relative ``tolerance``, origins by
    ``tolerance`` times the largest voxel size (mm), direction cosines by ``tolerance``:
    the rounding of headers written as float32 passes, a real shift does not.

    Returns:
        One phrase per difference, ``other``'s value first (as in "other does not match
        reference: ..."), in the (x, y, z) axis order of image headers and viewers, e.g.
        ``"spacing (x, y, z) (2, 1, 1) vs (1, 1, 1) mm"``.
    """
    axes = "(x, y)" if reference.ndim == 2 else "(x, y, z)"

    def fmt(values: Sequence[float]) -> str:
        # Geometry is in array order (z, y, x); reversing the flat tuple also turns a
        # direction matrix into header order (both of its axes flip).
        return "(" + ", ".join(f"{v:.4g}" for v in reversed(tuple(values))) + ")"

    if reference.ndim != other.ndim:
        return [f"dimension {other.ndim}D vs {reference.ndim}D"]
    diffs = []
    if tuple(reference.shape) != tuple(other.shape):
        diffs.append(f"size {axes} {fmt(other.shape)} vs {fmt(reference.shape)}")
    ref_sp, oth_sp = np.asarray(reference.spacing), np.asarray(other.spacing)
    if not np.allclose(oth_sp, ref_sp, rtol=tolerance, atol=0):
        diffs.append(f"spacing {axes} {fmt(other.spacing)} vs {fmt(reference.spacing)} mm")
    atol = tolerance * float(max(ref_sp.max(), oth_sp.max()))
    if not np.allclose(other.origin, reference.origin, rtol=0, atol=atol):
        diffs.append(f"origin {axes} {fmt(other.origin)} vs {fmt(reference.origin)} mm")
    if not np.allclose(other.direction, reference.direction, rtol=0, atol=tolerance):
        diffs.append(f"direction {axes} {fmt(other.direction)} vs {fmt(reference.direction)}")
    return diffs


def write_image(
    array: np.ndarray,
    path: str | Path,
    reference: Image | Geometry | None = None,
    spacing: tuple[float, ...] | None = None,
) -> Path:
    """Write ``array`` to ``path`` (format from the ending) with a reference's geometry."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_vector = (
        array.ndim == 3
        and array.shape[-1] in (3, 4)
        and path.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg")
    )
    img = sitk.GetImageFromArray(array, isVector=is_vector)
    if reference is not None:
        dim = img.GetDimension()
        if reference.ndim != dim:
            raise DataError(f"{path}: a {dim}D image cannot take a {reference.ndim}D geometry")
        apply_geometry(img, reference)
    elif spacing is not None:
        img.SetSpacing(_flip(tuple(spacing)))
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(img, str(tmp), useCompression=path.name.endswith(".gz"))
        except RuntimeError as exc:
            raise _write_failed(path, exc) from exc
        try:
            # ITK's NIfTI writer reports a short write (a full disk) only on stderr.
            check_nifti_complete(tmp)
        except DataError as exc:
            raise _write_failed(path, exc) from exc
    return path


def _write_failed(path: Path, exc: Exception) -> WriteError:
    """A one-line error for an image ITK could not write: SimpleITK gives no errno."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines)
    try:
        usage = os.statvfs(path.parent)
        full = usage.f_bavail * usage.f_frsize < (1 << 20)
    except (OSError, AttributeError):  # no statvfs on Windows
        full = False
    if full or "No space left on device" in text:
        return write_error(OSError(errno.ENOSPC, "full"), path)
    detail = next((ln.split("ERROR:", 1)[-1].strip() for ln in lines if "ERROR:" in ln), "")
    detail = detail or (lines[-1] if lines else str(exc))
    return WriteError(f"could not write {path} ({detail})")


def save_prediction(volume: Volume, prediction: np.ndarray, path: str | Path) -> Path:
    """Write a label prediction on the source grid with the scan's geometry.

    Args:
        volume: the evaluated case; its ``reference`` gives the geometry and
            ``extra["label_values"]`` (if present) the label value of each class index,
            so the file holds the dataset's own label values (e.g. BraTS 0, 1, 2, 4).
        prediction: class indices on the source grid, as returned by ``volume.restore``.
        path: the output file, e.g. ``<case>.nii.gz``.

    Raises:
        DataError: the volume has no source geometry or the prediction's shape differs.
    """
    reference = volume.reference
    if reference is None:
        raise DataError(f"case {volume.case_id!r}: no source geometry to save a prediction with")
    if isinstance(reference, Image):
        reference = reference.geometry
    pred = np.asarray(prediction)
    if reference.ndim == 2 and pred.ndim == 3 and pred.shape[0] == 1:
        pred = pred[0]
    if tuple(pred.shape) != tuple(reference.shape):
        raise DataError(
            f"case {volume.case_id!r}: prediction of shape {pred.shape} does not match "
            f"the scan's {tuple(reference.shape)}; pass it through volume.restore first"
        )
    pred = pred.astype(np.int64, copy=False)
    values = volume.extra.get("label_values") if volume.extra else None
    if values is not None:
        lut = np.asarray(values, dtype=np.int64)
        if pred.size and (pred.min() < 0 or pred.max() >= len(lut)):
            raise DataError(
                f"case {volume.case_id!r}: prediction holds a class outside 0..{len(lut) - 1}"
            )
        pred = lut[pred]
    top = int(pred.max()) if pred.size else 0
    dtype = np.uint8 if pred.min(initial=0) >= 0 and top < 256 else np.int16
    return write_image(pred.astype(dtype), path, reference=reference)
