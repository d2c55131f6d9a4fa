"""The synthetic CT/MRI phantom: determinism, anatomy contrasts, lesions, export."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchbox.data import synthetic
from benchbox.data.io import read_image
from benchbox.errors import ConfigError, DataError


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_same_slices_and_independent_of_count():
    a = synthetic.generate(6, 64, seed=3, split="train")
    b = synthetic.generate(6, 64, seed=3, split="train")
    assert _digest(*a) == _digest(*b)
    more = synthetic.generate(9, 64, seed=3, split="train")
    assert _digest(*(x[:6] for x in more)) == _digest(*a)
    other_seed = synthetic.generate(6, 64, seed=4, split="train")
    other_split = synthetic.generate(6, 64, seed=3, split="test")
    assert _digest(*other_seed) != _digest(*a) != _digest(*other_split)


def test_values_types_and_lesion_free_share():
    ct, mr, mask = synthetic.generate(200, 64, seed=0, lesion_free=0.25)
    assert ct.dtype == mr.dtype == np.float32 and mask.dtype == np.uint8
    assert ct.shape == mr.shape == mask.shape == (200, 64, 64)
    assert ct.min() >= 0 and ct.max() <= 1 and mr.min() >= 0 and mr.max() <= 1
    assert set(np.unique(mask)) == {0, 1}
    empty = ~mask.reshape(200, -1).any(1)
    assert 0.15 < empty.mean() < 0.35  # ~25 % of slices hold no lesion
    none = synthetic.generate(20, 64, seed=0, lesion_free=1.0)[2]
    assert not none.any()


def test_modality_contrasts_follow_the_specification():
    ct, mr, mask = synthetic.generate(40, 128, seed=0, calcified=0.0)
    skull = ct > 0.8  # the brightest CT structure is bone
    assert skull.mean() > 0.02
    assert mr[skull].mean() < 0.2  # bone is dark in MRI
    brain = (ct > 0.25) & (ct < 0.5) & (mr > 0.2)
    lesion = mask.astype(bool)
    # Lesions: clear in MRI (bright against brain), faint in CT (within a few percent).
    mr_contrast = mr[lesion].mean() - mr[brain & ~lesion].mean()
    ct_contrast = abs(ct[lesion].mean() - ct[brain & ~lesion].mean())
    assert mr_contrast > 0.25
    assert ct_contrast < 0.05
    # Grey and white matter: contrasted in MRI, nearly flat in CT.
    gm_wm_mr = np.percentile(mr[brain & ~lesion], 90) - np.percentile(mr[brain & ~lesion], 10)
    gm_wm_ct = np.percentile(ct[brain & ~lesion], 90) - np.percentile(ct[brain & ~lesion], 10)
    assert gm_wm_mr > 2 * gm_wm_ct


def test_calcified_cores_are_ct_only():
    ct, mr, mask = synthetic.generate(60, 128, seed=1, calcified=1.0, lesion_free=0.0)
    lesion = mask.astype(bool)
    calc = lesion & (ct > 0.7)
    assert calc.sum() > 50
    assert mr[calc].mean() < 0.3  # a dark hole in MRI where CT is bright
    assert ct[lesion & ~calc].mean() < 0.5


def test_misregistration_moves_only_the_mri():
    aligned = synthetic.generate(4, 64, seed=2)
    shifted = synthetic.generate(4, 64, seed=2, misregistration=2.0)
    assert np.array_equal(aligned[0], shifted[0]) and np.array_equal(aligned[2], shifted[2])
    assert not np.allclose(aligned[1], shifted[1])


def test_dataset_splits_and_samples():
    ds = synthetic.SyntheticDataset(image_size=32, n_train=5, n_val=2, n_test=3, seed=0)
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [5, 2, 3]
    sample = ds.split("test")[1]
    assert sample["a"].shape == sample["b"].shape == (1, 32, 32)
    assert sample["mask"].dtype.is_floating_point is False and sample["mask"].shape == (32, 32)
    assert sample["case_id"] == "test-00001"
    assert sample["spacing"].tolist() == [220 / 32, 220 / 32]
    assert ds.eval_regions() == {"lesion": (1,)} and ds.num_classes == 2
    with pytest.raises(DataError, match="no split 'training'"):
        ds.split("training")


@pytest.mark.parametrize("kwargs", [{"image_size": 8}, {"n_train": -1}, {"calcified": 2.0}])
def test_invalid_parameters(kwargs):
    with pytest.raises(ConfigError, match="synthetic"):
        synthetic.SyntheticDataset(**kwargs)


def test_export_round_trips_through_the_readers(tmp_path):
    ds = synthetic.SyntheticDataset(image_size=32, n_train=2, n_val=1, n_test=1)
    synthetic.export(ds, tmp_path)
    ct = read_image(tmp_path / "nifti" / "imagesTr" / "synthetic_train_00001_0000.nii.gz")
    assert np.array_equal(ct.array, ds.split("train")[1]["a"][0].numpy())
    assert ct.spacing == pytest.approx((220 / 32, 220 / 32))
    label = read_image(tmp_path / "nifti" / "labelsTs" / "synthetic_test_00000.nii.gz")
    assert np.array_equal(label.array, ds.split("test")[0]["mask"].numpy())
    png = read_image(tmp_path / "png" / "val" / "MRI" / "synthetic_val_00000.png")
    expected = np.round(ds.split("val")[0]["b"][0].numpy() * 255)
    assert np.array_equal(png.array, expected.astype(np.uint8))
    assert (tmp_path / "nifti" / "dataset.json").is_file()
