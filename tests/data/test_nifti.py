"""The nnU-Net v2 raw layout (benchbox.data.nifti), on tiny datasets written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchbox.data.io import write_image
from benchbox.data.nifti import open_nifti
from benchbox.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")

META = {
    "channel_names": {"0": "CT", "1": "T2"},
    "labels": {"background": 0, "lesion": 1, "rim": 2, "whole": [1, 2]},
    "numTraining": 5,
    "file_ending": ".nii.gz",
}
SPACING = (3.0, 0.8, 0.8)


def _case(rng: np.random.Generator, shape=(6, 24, 20)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ct = rng.normal(40, 20, size=shape).astype(np.int16)
    ct[:, :2] = -1000  # air
    t2 = rng.random(shape).astype(np.float32) * 300
    lab = np.zeros(shape, np.uint8)
    lab[2:4, 8:14, 6:12] = 2
    lab[2:4, 10:12, 8:10] = 1
    return ct, t2, lab


def write_dataset(
    root: Path, n_train: int = 5, n_test: int = 0, meta: dict | None = None, dims: int = 3
) -> Path:
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    spacing = SPACING if dims == 3 else SPACING[1:]
    for split, n, tag in (("Tr", n_train, "tr"), ("Ts", n_test, "ts")):
        for i in range(n):
            ct, t2, lab = _case(rng)
            if dims == 2:
                ct, t2, lab = ct[3], t2[3], lab[3]
            case = f"toy_{tag}{i:03d}"
            write_image(ct, root / f"images{split}" / f"{case}_0000.nii.gz", spacing=spacing)
            write_image(t2, root / f"images{split}" / f"{case}_0001.nii.gz", spacing=spacing)
            write_image(lab, root / f"labels{split}" / f"{case}.nii.gz", spacing=spacing)
    (root / "dataset.json").write_text(json.dumps(meta or META))
    return root


def test_reads_a_3d_dataset(tmp_path):
    root = write_dataset(tmp_path / "Dataset042_Toy")
    ds = open_nifti(str(root), image_size=32, fit="pad", crop=False, ct_window="-100,100")
    assert ds.name == "dataset042_toy"
    assert ds.modalities == ("CT", "T2")
    assert ds.labels == {0: "background", 1: "lesion", 2: "rim"}
    assert ds.eval_regions() == {"whole": (1, 2)}
    cfg = ds.config()
    assert cfg["preprocessing"]["norms"] == {"CT": "ct", "T2": "mri"}
    assert [len(cfg["splits"][s]) for s in ("train", "val", "test")] == [3, 1, 1]
    vol = ds.volumes("test")[0]
    assert vol.spacing == pytest.approx(SPACING)
    # Identity direction, no crop, padding only: voxel (z, y, x) sits at (z, y + 4, x + 6).
    from benchbox.data.io import read_image

    ct = read_image(root / "imagesTr" / f"{vol.case_id}_0000.nii.gz").array
    expected = np.clip((ct.astype(np.float32) + 100) / 200, 0, 1)
    np.testing.assert_allclose(vol.a[:, 4:28, 6:26], expected, atol=1e-6)
    assert not vol.a[:, :4].any()
    np.testing.assert_array_equal(vol.restore(vol.mask), vol.source_mask)


def test_test_cases_come_from_labels_ts(tmp_path):
    root = write_dataset(tmp_path / "ds", n_train=4, n_test=2)
    ds = open_nifti(str(root), image_size=32)
    splits = ds.config()["splits"]
    assert splits["test"] == ["toy_ts000", "toy_ts001"]
    assert len(splits["val"]) == 1 and len(splits["train"]) == 3
    assert ds.config()["test_from"] == "imagesTs+labelsTs"


def test_reads_a_2d_dataset(tmp_path):
    root = write_dataset(tmp_path / "ds2d", n_train=6, n_test=2, dims=2)
    ds = open_nifti(str(root), image_size=32)
    assert ds.volumes("test") is None
    test = ds.split("test")
    assert len(test) == 2 and {s["case_id"] for s in test} == {"toy_ts000", "toy_ts001"}
    # 24 x 20 pixels of 0.8 mm fitted to 32: rows scale by 32/24, columns to 27 pixels.
    assert test[0]["spacing"].tolist() == pytest.approx([0.6, 0.8 * 20 / 27])
    assert ds.config()["dimension"] == "2d"


def test_channels_by_name_or_number(tmp_path):
    root = write_dataset(tmp_path / "ds")
    assert open_nifti(str(root), image_size=32, modalities="1,0").modalities == ("T2", "CT")
    assert open_nifti(str(root), image_size=32, modalities="T2,CT").modalities == ("T2", "CT")
    with pytest.raises(ConfigError, match="'PET' is not a channel"):
        open_nifti(str(root), image_size=32, modalities="PET,CT")


def test_nnunet_v1_keys(tmp_path):
    meta = {
        "modality": {"0": "MRI", "1": "CT"},
        "labels": {"0": "background", "1": "lesion", "2": "rim"},
    }
    root = write_dataset(tmp_path / "v1", meta=meta)
    ds = open_nifti(str(root), image_size=32)
    assert ds.modalities == ("MRI", "CT") and ds.labels == {0: "background", 1: "lesion", 2: "rim"}


# -- bad input --------------------------------------------------------------------------
def test_missing_channel_file(tmp_path):
    root = write_dataset(tmp_path / "ds")
    (root / "imagesTr" / "toy_tr002_0001.nii.gz").unlink()
    with pytest.raises(
        DataError, match=r"case 'toy_tr002': missing modality file .*toy_tr002_0001"
    ):
        open_nifti(str(root))


def test_missing_label_file(tmp_path):
    root = write_dataset(tmp_path / "ds")
    (root / "labelsTr" / "toy_tr001.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case 'toy_tr001': missing label file"):
        open_nifti(str(root))


def test_undeclared_label_value(tmp_path):
    meta = {**META, "labels": {"background": 0, "lesion": 1}}
    root = write_dataset(tmp_path / "ds", meta=meta)
    with pytest.raises(
        DataError, match=r"toy_tr000\.nii\.gz: unexpected label values 2 \(expected 0, 1\)"
    ):
        open_nifti(str(root), image_size=32)


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match=r"no dataset\.json"):
        (tmp_path / "empty").mkdir()
        open_nifti(str(tmp_path / "empty"))
    root = write_dataset(tmp_path / "ds")
    (root / "imagesTr" / "stray.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"stray\.nii\.gz: image name must end in _XXXX"):
        open_nifti(str(root))
    (root / "imagesTr" / "stray.nii.gz").unlink()
    (root / "imagesTr" / "toy_tr000_0002.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"channel 2 .* is not in dataset\.json"):
        open_nifti(str(root))
    (root / "dataset.json").write_text("{broken")
    with pytest.raises(DataError, match="invalid JSON"):
        open_nifti(str(root))


def test_one_channel_cannot_be_fused(tmp_path):
    root = write_dataset(tmp_path / "ds", meta={**META, "channel_names": {"0": "CT"}})
    with pytest.raises(DataError, match="fusion needs two"):
        open_nifti(str(root))


def test_empty_dataset(tmp_path):
    root = tmp_path / "ds"
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps(META))
    with pytest.raises(DataError, match="empty dataset"):
        open_nifti(str(root))
