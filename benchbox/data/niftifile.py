"""Two things ITK's NIfTI reader gets wrong, done here: truncation and non-finite voxels.

* ITK reads a truncated ``.nii``/``.nii.gz`` without complaint and fills the missing
  voxels with zeros (:func:`check_complete` refuses it).
* ITK before version 6 replaces every NaN and infinite voxel of a float NIfTI with 0
  (``nifti_read_buffer``; fixed upstream in ITK pull request 6683), so a label file full
  of NaN reads as background and an image's NaNs as real zeros.
  :func:`restore_non_finite` puts them back, so the readers' own checks see them.

Both parse the NIfTI-1/2 header themselves (a few fields at fixed offsets).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.errors import DataError

__all__ = ["NiftiHeader", "check_complete", "parse_header", "restore_non_finite"]

#: NIfTI datatype codes of the float types, and their NumPy type.
_FLOAT_TYPES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI-1/2 header that locate and scale the voxel data."""

    endian: str
    datatype: int
    bitpix: int
    dims: tuple[int, ...]
    offset: int
    slope: float
    inter: float

    @property
    def count(self) -> int:
        n = 1
        for d in self.dims:
            n *= max(int(d), 1)
        return n

    @property
    def nbytes(self) -> int:
        return self.count * self.bitpix // 8


def parse_header(header: bytes) -> NiftiHeader | None:
    """The header of a NIfTI-1 or NIfTI-2 file's first 540 bytes; ``None`` if not NIfTI."""
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0] if len(header) >= 4 else 0
        if size == 348 and len(header) >= 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset, slope, inter = struct.unpack(endian + "3f", header[108:120])
        elif size == 540 and len(header) >= 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            (offset,) = struct.unpack(endian + "q", header[168:176])
            slope, inter = struct.unpack(endian + "2d", header[176:192])
        else:
            continue
        ndim = dims[0]
        if not 1 <= ndim <= 7 or bitpix <= 0:
            return None
        return NiftiHeader(
            endian=endian,
            datatype=int(datatype),
            bitpix=int(bitpix),
            dims=tuple(int(d) for d in dims[1 : ndim + 1]),
            offset=max(int(offset), size),
            slope=float(slope),
            inter=float(inter),
        )
    return None


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _gzip_isize(path: Path) -> int:
    """The gzip trailer's uncompressed size (modulo 2**32) of a single-member file."""
    with path.open("rb") as fh:
        fh.seek(-4, 2)
        return struct.unpack("<I", fh.read(4))[0]


def check_complete(path: Path) -> None:
    """Raise if a NIfTI file holds fewer bytes than its header announces.

    Checks the size of a ``.nii``; for a ``.nii.gz``, the uncompressed size in the gzip
    trailer, and when that differs from the header's (a truncated file ends in random
    bytes), the length of the whole decompressed stream (about 50 ms for a BraTS volume).
    Other files pass.

    Raises:
        DataError: the file is truncated or its gzip stream is corrupt.
    """
    if not _is_nifti(path):
        return
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read(540)
                header = parse_header(raw)
                if header is None:
                    return  # not a NIfTI header: ITK's reader reports it
                if _gzip_isize(path) == (header.offset + header.nbytes) % (1 << 32):
                    return
                total = len(raw)
                while chunk := fh.read(1 << 22):
                    total += len(chunk)
        else:
            with path.open("rb") as fh:
                header = parse_header(fh.read(540))
            if header is None:
                return
            total = path.stat().st_size
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated NIfTI ({exc})") from exc
    need = header.offset + header.nbytes
    if total < need:
        raise DataError(f"{path}: truncated NIfTI: {total} bytes of data, the header needs {need}")


def restore_non_finite(img: Any, path: Path) -> Any:
    """``img`` (a ``SimpleITK.Image`` read from ``path``) with its NaN/inf voxels back.

    Only a scalar float NIfTI is concerned: its voxel data are read once more and the
    non-finite values (scaled by ``scl_slope``/``scl_inter`` as ITK scales the others)
    put back at their places; the image is returned unchanged when it has none.
    """
    if not _is_nifti(path) or img.GetNumberOfComponentsPerPixel() != 1:
        return img
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        header = parse_header(fh.read(540))
        if header is None or header.datatype not in _FLOAT_TYPES:
            return img
        fh.seek(header.offset)
        data = fh.read(header.nbytes)
    raw = np.frombuffer(data, dtype=header.endian + _FLOAT_TYPES[header.datatype])
    bad = ~np.isfinite(raw)
    if not bad.any():
        return img
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(img)
    if array.size != raw.size or not np.issubdtype(array.dtype, np.floating):
        return img
    values = raw[bad].astype(np.float64)
    if header.slope != 0.0:  # a zero slope means unscaled data (NIfTI standard)
        values = values * header.slope + header.inter
    flat = array.reshape(-1)  # NIfTI stores x fastest, as the (z, y, x) array does
    flat[bad] = values
    out = sitk.GetImageFromArray(flat.reshape(array.shape))
    out.CopyInformation(img)
    return out
