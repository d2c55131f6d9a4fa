"""The per-case pipeline (benchbox.data.pipeline): bad input is one DataError naming the
file or case; geometry checks and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.data import io
from benchbox.data.cases import open_cases
from benchbox.data.io import Geometry, read_image, write_image
from benchbox.data.preprocess import resample_like
from benchbox.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")


# -- bad input: one DataError naming the file or case ------------------------------------
def test_missing_modality_file(make_cases):
    root, cfg = make_cases(3)
    (root / "case01" / "t1c.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case 'case01': missing modality T1c file .*t1c\.nii\.gz"):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_corrupt_nifti(make_cases):
    root, cfg = make_cases(3)
    (root / "case02" / "flair.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"case02/flair\.nii\.gz"):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_truncated_nifti(make_cases):
    root, cfg = make_cases(3)
    path = root / "case00" / "seg.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"case00/seg\.nii\.gz: (corrupt or )?truncated"):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_unexpected_label_values(make_cases):
    root, cfg = make_cases(3)
    path = root / "case01" / "seg.nii.gz"
    img = read_image(path)
    arr = img.array.copy()
    arr[0, 0, :3] = [3, 7, 7]
    write_image(arr, path, reference=img)
    with pytest.raises(DataError, match=r"case01/seg\.nii\.gz: unexpected label values 3, 7"):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_non_integer_label_values(make_cases):
    root, cfg = make_cases(3)
    path = root / "case01" / "seg.nii.gz"
    img = read_image(path)
    write_image(img.array.astype(np.float32) * 0.5, path, reference=img)
    with pytest.raises(DataError, match=r"case01/seg\.nii\.gz: label file holds non-integer"):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_empty_dataset(make_cases, tmp_path):
    _, cfg = make_cases(1)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"nothing: empty dataset"):
        open_cases(str(tmp_path / "nothing"), config=str(cfg))


def test_2d_and_3d_mixed_within_a_case(make_cases):
    root, cfg = make_cases(3)
    path = root / "case02" / "t1c.nii.gz"
    write_image(read_image(path).array[0], path, spacing=(1.0, 1.0))
    with pytest.raises(
        DataError, match=r"case 'case02': 2D and 3D files mixed: .*t1c\.nii\.gz is 2D"
    ):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_2d_and_3d_mixed_across_cases(make_cases):
    root, cfg = make_cases(3)
    for key in ("flair", "t1c", "seg", "brain"):
        path = root / "case01" / f"{key}.nii.gz"
        write_image(read_image(path).array[:, 5], path, spacing=(2.5, 1.1))
    with pytest.raises(
        DataError, match=r"2D and 3D files mixed: case 'case01' is 2D, case 'case00' is 3D"
    ):
        open_cases(str(root), config=str(cfg), image_size=32)


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"spacing": (2.5, 0.9, 1.6)}, "spacing"),
        ({"origin": (-20.0, 38.0, 10.25)}, "origin"),
        ({"direction": tuple(np.eye(3).ravel())}, "direction"),
    ],
)
def test_geometry_mismatch_and_resample(make_cases, change, phrase):
    from dataclasses import replace

    root, cfg = make_cases(3)
    path = root / "case00" / "t1c.nii.gz"
    img = read_image(path)
    write_image(img.array, path, reference=replace(img.geometry, **change))
    with pytest.raises(
        DataError,
        match=rf"case 'case00': modality T1c .*t1c\.nii\.gz does not match FLAIR .*{phrase}"
        r".*--resample",
    ):
        open_cases(str(root), config=str(cfg), image_size=32)
    ds = open_cases(str(root), config=str(cfg), image_size=32, resample=True)
    assert len(ds.split("train")) > 0


def test_size_mismatch_is_named(make_cases):
    root, cfg = make_cases(3)
    path = root / "case02" / "seg.nii.gz"
    img = read_image(path)
    write_image(img.array[:, :-2], path, reference=img)
    with pytest.raises(
        DataError,
        match=r"case 'case02': label .*seg\.nii\.gz does not match FLAIR.*"
        r"size \(x, y, z\) \(32, 38, 10\) vs \(32, 40, 10\)",  # the label's first
    ):
        open_cases(str(root), config=str(cfg), image_size=32)


def test_resample_puts_a_shifted_modality_on_the_reference_grid(make_cases):
    """A T1c shifted by a whole number of voxels comes back exactly onto FLAIR's grid."""
    root, _ = make_cases(3)
    ref = read_image(root / "case00" / "flair.nii.gz")
    t1c = read_image(root / "case00" / "t1c.nii.gz")
    # Shift by two voxels along storage axis 2 (physical x, 1.1 mm): drop two columns.
    moved = Geometry(
        (10, 40, 30),
        ref.spacing,
        (ref.origin[0], ref.origin[1], ref.origin[2] + 2 * 1.1),
        ref.direction,
    )
    write_image(t1c.array[:, :, 2:], root / "case00" / "t1c.nii.gz", reference=moved)
    moving, fixed = (io.read_sitk(root / "case00" / f) for f in ("t1c.nii.gz", "flair.nii.gz"))
    resampled = io.image_from_sitk(resample_like(moving, fixed))
    np.testing.assert_allclose(resampled.array[:, :, 2:], t1c.array[:, :, 2:], atol=1e-4)
    assert not resampled.array[:, :, :2].any()
