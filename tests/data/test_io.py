"""Readers, geometry helpers and corrupt files (benchbox.data.io)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchbox.data import io
from benchbox.data.io import Geometry, compare_geometry, read_geometry, read_image, write_image
from benchbox.errors import DataError

sitk = pytest.importorskip("SimpleITK")


# -- NIfTI fixtures (real files) -------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize(
    "rel",
    [
        "sct/t1/t1w.nii.gz",
        "sct/t2/t2.nii.gz",
        "sct/t2s/t2s.nii.gz",
        "sct/mt/mt0.nii.gz",
        "totalsegmentator/example_ct_sm.nii.gz",
        "totalsegmentator/example_seg_mr.nii.gz",
    ],
)
def test_fixture_geometry_matches_simpleitk(shared_data, rel):
    path = shared_data("fixtures") / rel
    img = read_image(path)
    ref = sitk.ReadImage(str(path))
    assert img.array.shape == tuple(reversed(ref.GetSize()))
    assert img.spacing == pytest.approx(tuple(reversed(ref.GetSpacing())))
    assert img.origin == pytest.approx(tuple(reversed(ref.GetOrigin())))
    # Column j of the direction is the physical direction of array axis j.
    d = np.asarray(img.direction).reshape(3, 3)
    d_itk = np.asarray(ref.GetDirection()).reshape(3, 3)
    for j in range(3):
        assert d[::-1, j] == pytest.approx(d_itk[:, 2 - j])
    # Voxel (k, j, i) of the array is ITK's index (i, j, k) in physical space.
    k, j, i = (n // 3 for n in img.array.shape)
    phys = np.asarray(img.origin) + d @ (np.array([k, j, i]) * img.spacing)
    assert phys[::-1] == pytest.approx(ref.TransformIndexToPhysicalPoint((i, j, k)))
    header, components = read_geometry(path)
    assert header == img.geometry and components == 1


@pytest.mark.data
def test_totalsegmentator_ct_is_in_hounsfield_units(shared_data):
    img = read_image(shared_data("fixtures", "totalsegmentator") / "example_ct_sm.nii.gz")
    assert img.array.dtype == np.int16
    assert img.array.min() < -900 and img.array.max() > 300  # air and bone
    assert img.spacing == pytest.approx((3.0, 3.0, 3.0))


@pytest.mark.data
def test_compare_geometry_on_fixtures(shared_data):
    sct = shared_data("fixtures", "sct")
    mt0, mt1 = (read_geometry(sct / "mt" / f"mt{i}.nii.gz")[0] for i in (0, 1))
    assert compare_geometry(mt0, mt1) == []
    t1, t2 = read_geometry(sct / "t1" / "t1w.nii.gz")[0], read_geometry(sct / "t2" / "t2.nii.gz")[0]
    diffs = " ".join(compare_geometry(t1, t2))
    assert "size" in diffs and "origin" in diffs and "direction" in diffs
    assert "spacing" not in diffs  # both 1 mm


def test_compare_geometry_tolerance():
    ref = Geometry((4, 5, 6), (1.0, 1.0, 2.0), (0.0, 10.0, -5.0), tuple(np.eye(3).ravel()))
    rounded = Geometry((4, 5, 6), (1.0000004, 1.0, 2.0), (0.0, 10.0000008, -5.0), ref.direction)
    assert compare_geometry(ref, rounded) == []
    shifted = Geometry((4, 5, 6), (1.0, 1.0, 2.0), (0.0, 10.5, -5.0), ref.direction)
    # the other grid's values first, in (x, y, z) order like image headers
    assert compare_geometry(ref, shifted) == ["origin (x, y, z) (-5, 10.5, 0) vs (-5, 10, 0) mm"]
    assert compare_geometry(ref, shifted, tolerance=0.5) == []
    thick = Geometry((4, 5, 6), (2.0, 1.0, 2.0), ref.origin, ref.direction)
    assert compare_geometry(ref, thick) == ["spacing (x, y, z) (2, 1, 2) vs (2, 1, 1) mm"]
    wide = Geometry((4, 5, 7), ref.spacing, ref.origin, ref.direction)
    assert compare_geometry(ref, wide) == ["size (x, y, z) (7, 5, 4) vs (6, 5, 4)"]
    flat = Geometry((5, 6), (1.0, 2.0), (10.0, -5.0), (1.0, 0.0, 0.0, 1.0))
    assert compare_geometry(ref, flat) == ["dimension 2D vs 3D"]


def test_geometry_phrases_follow_simpleitk_header_order(tmp_path):
    """Values print in the order SimpleITK (and so ITK-SNAP, Slicer) reports them."""
    ref = sitk.Image(6, 5, 4, sitk.sitkUInt8)  # x, y, z sizes
    ref.SetSpacing((0.5, 0.7, 2.0))
    ref.SetOrigin((1.0, 2.0, 3.0))
    other = sitk.Image(6, 5, 3, sitk.sitkUInt8)
    other.SetSpacing((0.5, 0.7, 3.0))
    other.SetOrigin((1.0, 2.0, 3.0))
    other.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    paths = [tmp_path / "ref.nii.gz", tmp_path / "other.nii.gz"]
    for img, path in zip((ref, other), paths, strict=True):
        sitk.WriteImage(img, str(path))
    diffs = compare_geometry(*(read_image(p).geometry for p in paths))

    def fmt(values):
        return "(" + ", ".join(f"{v:g}" for v in values) + ")"

    assert diffs == [
        f"size (x, y, z) {fmt(other.GetSize())} vs {fmt(ref.GetSize())}",
        f"spacing (x, y, z) {fmt(other.GetSpacing())} vs {fmt(ref.GetSpacing())} mm",
        f"direction (x, y, z) {fmt(other.GetDirection())} vs {fmt(ref.GetDirection())}",
    ]


def test_a_failed_image_write_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    """SimpleITK gives no errno: its message, or the free space, says the disk is full."""
    arr = np.zeros((8, 8), np.uint8)
    target = tmp_path / "examples.png"

    def itk_fails(img, name, *args, **kwargs):
        Path(name).write_bytes(b"\x89PNG half")
        raise RuntimeError(
            "Exception thrown in SimpleITK ImageFileWriter_Execute: itkPNGImageIO.cxx:567:\n"
            f"ITK ERROR: PNGImageIO(0x1): Error while writing Slice to file: {name}\n"
            "Reason: No space left on device"
        )

    monkeypatch.setattr(sitk, "WriteImage", itk_fails)
    with pytest.raises(Exception) as info:
        write_image(arr, target)
    assert str(info.value) == f"no space left on device writing {target}"
    assert not list(tmp_path.iterdir())


def test_a_short_nifti_write_is_caught(tmp_path, monkeypatch):
    """ITK's NIfTI writer reports a short write on stderr only; the file is checked."""
    real = sitk.WriteImage
    target = tmp_path / "pred.nii.gz"

    def short(img, name, *args, **kwargs):
        real(img, name, *args, **kwargs)
        data = Path(name).read_bytes()
        Path(name).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(sitk, "WriteImage", short)
    with pytest.raises(Exception, match=r"^could not write .*pred\.nii\.gz \(.*truncated"):
        write_image(np.random.default_rng(0).random((8, 16, 16)).astype(np.float32), target)
    assert not list(tmp_path.iterdir())


def test_image_writes_keep_the_replaced_file_mode(tmp_path):
    import os
    import stat

    target = tmp_path / "examples.png"
    write_image(np.zeros((8, 8), np.uint8), target)
    os.chmod(target, 0o664)
    write_image(np.ones((8, 8), np.uint8), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o664
    assert read_image(target).array.max() == 1


def test_write_read_roundtrip_keeps_geometry(tmp_path):
    geom = Geometry(
        (3, 4, 5), (2.0, 0.5, 0.7), (1.0, -2.0, 3.5), (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)
    )
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = read_image(write_image(arr, tmp_path / "x.nii.gz", reference=geom))
    np.testing.assert_array_equal(img.array, arr)
    assert compare_geometry(geom, img.geometry, tolerance=1e-5) == []


# -- corrupt files ---------------------------------------------------------------------
@pytest.fixture
def volume_file(tmp_path) -> Path:
    arr = np.random.default_rng(0).normal(size=(20, 30, 30)).astype(np.float32)
    return write_image(arr, tmp_path / "vol.nii.gz", spacing=(2.0, 1.0, 1.0))


def test_truncated_nifti_gz_is_an_error(volume_file, tmp_path):
    data = volume_file.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    # SimpleITK alone reads it and silently fills zeros; benchbox must not.
    with pytest.raises(DataError, match=r"cut\.nii\.gz.*(truncated|corrupt)"):
        read_image(cut)


def test_truncated_plain_nifti_is_an_error(volume_file, tmp_path):
    plain = tmp_path / "vol.nii"
    plain.write_bytes(gzip.decompress(volume_file.read_bytes()))
    assert read_image(plain).array.shape == (20, 30, 30)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(plain.read_bytes()[:-1000])
    with pytest.raises(DataError, match=r"cut\.nii: truncated NIfTI"):
        read_image(cut)


def test_garbage_and_missing_files_are_errors(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image" * 10)
    with pytest.raises(DataError, match=r"bad\.nii\.gz"):
        read_image(bad)
    with pytest.raises(DataError, match=r"nothere\.nii\.gz: no such file"):
        read_image(tmp_path / "nothere.nii.gz")


def test_complete_multi_member_gzip_is_accepted(volume_file, tmp_path):
    # A valid .nii.gz written as two gzip members: the trailer size is the last member's.
    raw = gzip.decompress(volume_file.read_bytes())
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(read_image(two).array, read_image(volume_file).array)


# -- DICOM -----------------------------------------------------------------------------
pydicom = pytest.importorskip("pydicom")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_dicom_folder_matches_pydicom(tmp_path, name):
    from pydicom.data import get_testdata_file

    src = get_testdata_file(name)
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(src, folder / name)
    img = read_image(folder)
    ds = pydicom.dcmread(src)
    expected = ds.pixel_array.astype(np.float64)
    expected = expected * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    assert img.array.shape == (1, *expected.shape)
    np.testing.assert_array_equal(img.array[0], expected)
    assert img.spacing[1:] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert img.origin[::-1] == pytest.approx([float(v) for v in ds.ImagePositionPatient], abs=1e-4)


def _write_series(folder: Path, volume: np.ndarray, spacing, origin, uid: str) -> None:
    """A DICOM series by SimpleITK's own example (one file per slice)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(volume)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        sl = img[:, :, k]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0020|000d": uid + ".1",
            "0020|000e": uid + ".2",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": "\\".join(map(str, pos)),
            "0020|0013": str(k + 1),
            "0018|0050": str(spacing[2]),
            "0008|0018": f"{uid}.3.{k + 1}",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid[-1]}-slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_volume_roundtrip(tmp_path):
    vol = (np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) * 7) - 300
    _write_series(
        tmp_path / "s", vol, (0.8, 0.6, 2.5), (-10.0, 20.0, 30.0), "1.2.826.0.1.3680043.2.1125.1"
    )
    img = read_image(tmp_path / "s")
    np.testing.assert_array_equal(img.array, vol)
    assert img.spacing == pytest.approx((2.5, 0.6, 0.8))
    assert img.origin == pytest.approx((30.0, 20.0, -10.0))


def test_folder_with_two_series_is_an_error(tmp_path):
    vol = np.zeros((2, 4, 4), np.int16)
    _write_series(
        tmp_path / "mixed", vol, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), "1.2.826.0.1.3680043.2.1125.7"
    )
    _write_series(
        tmp_path / "mixed", vol, (1.0, 1.0, 1.0), (0.0, 0.0, 5.0), "1.2.826.0.1.3680043.2.1125.8"
    )
    with pytest.raises(DataError, match=r"mixed: folder holds 2 DICOM series"):
        read_image(tmp_path / "mixed")


def test_folder_without_dicom_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"empty: folder holds no DICOM series"):
        read_image(tmp_path / "empty")


def test_is_image_path(tmp_path):
    assert not io.is_image_path(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    assert not io.is_image_path(tmp_path / "d")
    (tmp_path / "d" / "x.dcm").write_bytes(b"")
    assert io.is_image_path(tmp_path / "d")


def test_grey_alpha_png_is_read_with_its_two_components(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    la = np.random.default_rng(3).integers(0, 256, size=(5, 6, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    pil.fromarray(la, "LA").save(path)  # ITK's PNG reader refuses grey+alpha
    img = read_image(path)
    assert img.components == 2 and img.spacing == (1.0, 1.0)
    np.testing.assert_array_equal(img.array, la)
    geometry, components = read_geometry(path)
    assert geometry.shape == (5, 6) and components == 2
