"""NIfTI checks ITK does not do: non-finite voxels kept (benchbox.data.niftifile)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from benchbox.data import niftifile
from benchbox.data.io import read_image

sitk = pytest.importorskip("SimpleITK")


def _write(array: np.ndarray, path: Path) -> Path:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((0.5, 2.0, 3.0))
    sitk.WriteImage(img, str(path))
    return path


def _with_special_values(dtype: str) -> np.ndarray:
    a = np.arange(24, dtype=dtype).reshape(2, 3, 4) + 1
    a[0, 0, 1], a[0, 1, 2], a[1, 2, 3] = np.nan, -np.inf, np.inf
    return a


@pytest.mark.parametrize("name", ["x.nii", "x.nii.gz"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_inf_survive_reading(tmp_path, name, dtype):
    expected = _with_special_values(dtype)
    path = _write(expected, tmp_path / name)
    # The premise: ITK (before 6) reads them as zeros.
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if np.isfinite(itk).all():
        assert itk[0, 0, 1] == 0 and itk[1, 2, 3] == 0
    img = read_image(path)
    np.testing.assert_array_equal(img.array, expected)
    assert img.spacing == (3.0, 2.0, 0.5)


def test_scaled_file_keeps_the_sign_of_its_infinities(tmp_path):
    path = _write(_with_special_values("float32"), tmp_path / "scaled.nii")
    raw = bytearray(path.read_bytes())
    raw[112:120] = struct.pack("<2f", -2.0, 1.0)  # scl_slope, scl_inter
    path.write_bytes(bytes(raw))
    arr = read_image(path).array
    assert arr[0, 0, 0] == pytest.approx(-1.0)  # 1 * -2 + 1, scaled by ITK
    assert np.isnan(arr[0, 0, 1])
    assert arr[0, 1, 2] == np.inf and arr[1, 2, 3] == -np.inf


def test_files_without_non_finite_values_are_left_alone(tmp_path):
    path = _write(np.arange(24, dtype=np.float32).reshape(2, 3, 4), tmp_path / "ok.nii.gz")
    img = sitk.ReadImage(str(path))
    assert niftifile.restore_non_finite(img, path) is img
    ints = _write(np.arange(24, dtype=np.int16).reshape(2, 3, 4), tmp_path / "i.nii.gz")
    img = sitk.ReadImage(str(ints))
    assert niftifile.restore_non_finite(img, ints) is img


def test_header_fields_of_nifti1(tmp_path):
    path = _write(np.zeros((2, 3, 4), np.float32), tmp_path / "h.nii.gz")
    with gzip.open(path, "rb") as fh:
        header = niftifile.parse_header(fh.read(540))
    assert header is not None
    assert header.dims == (4, 3, 2) and header.datatype == 16 and header.bitpix == 32
    assert header.nbytes == 24 * 4 and header.offset >= 348
    assert niftifile.parse_header(b"\x00" * 540) is None
