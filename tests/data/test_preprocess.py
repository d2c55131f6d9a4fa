"""Orientation, intensities, crop, fit, restore and slice sampling (benchbox.data.preprocess)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchbox.data.io import image_from_sitk, sitk_geometry
from benchbox.data.preprocess import (
    Fit,
    Orientation,
    Restorer,
    bounding_box,
    ct_window,
    percentile_normalise,
    resample_like,
    sample_slices,
)
from benchbox.errors import ConfigError

sitk = pytest.importorskip("SimpleITK")


def _signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            mat = np.zeros((3, 3))
            for col, row in enumerate(perm):
                mat[row, col] = signs[col]
            yield mat


@pytest.mark.parametrize("mat", list(_signed_permutations())[::5])
def test_orientation_matches_simpleitk_dicomorient(mat):
    arr = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.7, 2.0))
    # The ITK direction in (x, y, z) order from the array-order matrix.
    img.SetDirection(tuple(mat[::-1, ::-1].ravel()))
    ref = image_from_sitk(sitk.DICOMOrient(img, "LPS"))  # independent reference
    ori = Orientation.from_direction(sitk_geometry(img).direction)
    np.testing.assert_array_equal(ori.apply(arr), ref.array)
    assert ori.spacing(sitk_geometry(img).spacing) == pytest.approx(ref.spacing)
    np.testing.assert_array_equal(ori.invert(ori.apply(arr)), arr)


@pytest.mark.data
def test_orientation_of_a_sideways_fixture(shared_data):
    path = shared_data("fixtures", "sct", "t2") / "t2.nii.gz"
    img = sitk.ReadImage(str(path))
    ori = Orientation.from_direction(sitk_geometry(img).direction)
    assert not ori.is_identity
    ref = image_from_sitk(sitk.DICOMOrient(img, "LPS"))
    np.testing.assert_array_equal(ori.apply(sitk.GetArrayFromImage(img)), ref.array)


def test_oblique_direction_gets_distinct_axes():
    c, s = np.cos(np.pi / 4 + 0.01), np.sin(np.pi / 4 + 0.01)
    mat = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    ori = Orientation.from_direction(tuple(mat.ravel()))
    assert sorted(ori.perm) == [0, 1, 2]


def test_ct_window_is_linear_and_clipped():
    hu = np.array([-2000, -1000, 0, 500, 1000, 3000], dtype=np.int16)
    np.testing.assert_allclose(ct_window(hu, -1000, 1000), [0, 0, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(ct_window(np.array([40.0]), 0, 80), [0.5])
    with pytest.raises(ConfigError):
        ct_window(hu, 10, 10)


def test_percentile_normalise_analytic():
    arr = np.arange(1001, dtype=np.float32)  # percentile p of 0..1000 is 10 * p
    out = percentile_normalise(arr, None, 0.5, 99.5)
    lo, hi = 5.0, 995.0
    np.testing.assert_allclose(
        out[[0, 5, 500, 995, 1000]], [0, 0, (500 - lo) / (hi - lo), 1, 1], atol=1e-6
    )


def test_percentile_normalise_uses_and_zeroes_outside_the_mask():
    arr = np.full((4, 4), -3.0, dtype=np.float32)  # z-scored background would be grey
    arr[1:3, 1:3] = [[1.0, 2.0], [3.0, 4.0]]
    mask = arr > -3
    out = percentile_normalise(arr, mask, 0, 100)
    assert out[0, 0] == 0.0
    np.testing.assert_allclose(out[1:3, 1:3], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    assert not percentile_normalise(np.ones((3, 3)), None).any()  # constant -> zeros


def test_bounding_box():
    mask = np.zeros((5, 10, 12), bool)
    mask[2, 3:5, 4:9] = True
    assert bounding_box(mask) == ((2, 3), (3, 5), (4, 9))
    assert bounding_box(mask, margin=2) == ((0, 5), (1, 7), (2, 11))
    assert bounding_box(np.zeros((2, 3), bool)) == ((0, 2), (0, 3))


def test_fit_plan():
    fit = Fit.plan(170, 140, 128)
    assert fit.resized == (128, 105) and fit.offset == (0, 11)
    assert fit.scale == pytest.approx((128 / 170, 105 / 140))
    pad = Fit.plan(40, 30, 64, "pad")
    assert pad.resized == (40, 30) and pad.offset == (12, 17)
    assert Fit.plan(100, 50, 64, "pad").resized == (64, 32)  # too big: scaled down
    with pytest.raises(ConfigError):
        Fit.plan(10, 10, 64, "stretch")


def test_fit_roundtrip_labels():
    labels = np.random.default_rng(0).integers(0, 4, size=(3, 20, 15))
    pad = Fit.plan(20, 15, 32, "pad")
    fitted = pad.apply(labels, label=True)
    assert fitted.shape == (3, 32, 32) and fitted[:, :6].sum() == 0
    np.testing.assert_array_equal(pad.invert(fitted), labels)
    up = Fit.plan(16, 16, 32)  # exact 2x upsampling: nearest comes back exactly
    small = labels[:, :16, :15].repeat(2, axis=2)[:, :, :16]
    np.testing.assert_array_equal(up.invert(up.apply(small, label=True)), small)


def test_fit_images_stay_in_unit_range():
    img = np.random.default_rng(0).random((2, 50, 40)).astype(np.float32)
    out = Fit.plan(50, 40, 32).apply(img)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert abs(out[:, :, 3:29].mean() - img.mean()) < 0.01  # antialiased: mean kept


def test_restorer_inverts_orientation_crop_and_fit():
    rng = np.random.default_rng(3)
    source = np.zeros((6, 30, 20), np.int64)
    source[2:5, 8:20, 5:12] = rng.integers(1, 3, size=(3, 12, 7))
    ori = Orientation((1, 0, 2), (True, False, True))
    canon = ori.apply(source)
    box = bounding_box(canon > 0, margin=1)
    fit = Fit.plan(box[1][1] - box[1][0], box[2][1] - box[2][0], 32, "pad")
    crop = canon[tuple(slice(a, b) for a, b in box)]
    restorer = Restorer(source.shape, ori, box, fit)
    np.testing.assert_array_equal(restorer(fit.apply(crop, label=True)), source)
    # Scores (D, K, S, S) are resized and argmaxed.
    onehot = np.eye(3)[fit.apply(crop, label=True)].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(restorer(onehot), source)
    with pytest.raises(ValueError, match="does not match"):
        restorer(np.zeros((2, 32, 32)))


def test_resample_like_shifts_by_one_voxel():
    arr = np.random.default_rng(0).random((4, 6, 8)).astype(np.float32)
    moving = sitk.GetImageFromArray(arr)
    reference = sitk.GetImageFromArray(np.zeros_like(arr))
    reference.SetOrigin((1.0, 0.0, 0.0))  # one voxel along x (array axis 2)
    out = sitk.GetArrayFromImage(resample_like(moving, reference))
    np.testing.assert_allclose(out[:, :, :-1], arr[:, :, 1:], atol=1e-6)
    assert not out[:, :, -1].any()  # outside the moving image: default 0
    lab = sitk.GetImageFromArray((arr > 0.5).astype(np.uint8))
    out_lab = sitk.GetArrayFromImage(resample_like(lab, reference, label=True))
    assert out_lab.dtype == np.uint8
    np.testing.assert_array_equal(out_lab[:, :, :-1], (arr[:, :, 1:] > 0.5))


def test_sample_slices_shares():
    lesion = np.array([True] * 10 + [False] * 30)
    rng = np.random.default_rng(0)
    picked = sample_slices(lesion, rng, 0, 0.5)
    assert lesion[picked].sum() == 10 and (~lesion[picked]).sum() == 10
    picked = sample_slices(lesion, rng, 8, 0.25)
    assert len(picked) == 8 and lesion[picked].sum() == 2
    picked = sample_slices(lesion, rng, 20, 0.9)  # only 10 lesion slices: fill with others
    assert len(picked) == 20 and lesion[picked].sum() == 10
    np.testing.assert_array_equal(sample_slices(lesion, rng), np.arange(40))
    assert len(sample_slices(lesion, rng, 12)) == 12
    a = sample_slices(lesion, np.random.default_rng(5), 6, 0.5)
    b = sample_slices(lesion, np.random.default_rng(5), 6, 0.5)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a) > 0)
    with pytest.raises(ConfigError):
        sample_slices(lesion, rng, 5, 1.5)
