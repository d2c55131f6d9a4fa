"""Case folders described by TOML (benchbox.data.cases)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchbox.data.cases import find_config, label_spec, load_config, open_cases
from benchbox.data.paths import REPO_ROOT
from benchbox.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_shipped_brats_config():
    path = find_config("brats2015")
    assert path == REPO_ROOT / "configs" / "brats2015.toml"
    cfg = load_config(path)
    assert cfg["fuse"] == ["FLAIR", "T1c"]
    spec = label_spec(cfg, path)
    assert spec is not None and spec.sorted_values == [0, 1, 2, 3, 4]
    assert dict(spec.regions) == {
        "whole-tumour": (1, 2, 3, 4),
        "tumour-core": (1, 3, 4),
        "enhancing-tumour": (4,),
    }


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nfuse = ["A", "B"]\ncolour = 1\n[modalities]\nA = "a*"\nB = "b*"\n')
    with pytest.raises(ConfigError, match=r"unknown key.*colour"):
        load_config(bad)
    bad.write_text('[modalities]\nA = "a*"\n')
    with pytest.raises(ConfigError, match="at least two"):
        load_config(bad)
    bad.write_text('label = "seg.nii.gz"\n[modalities]\nA = "a*"\nB = "b*"\n')
    with pytest.raises(ConfigError, match=r"\[labels\]"):
        load_config(bad)
    bad.write_text('[modalities]\nA = "a*"\nB = "b*"\n[split]\nnfolds = 5\n')
    with pytest.raises(ConfigError, match=r"\[split\]: nfolds"):
        load_config(bad)
    bad.write_text("not toml = = =")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)
    with pytest.raises(DataError, match="no such file"):
        find_config(tmp_path / "missing.toml")


def test_dataset_from_config_file_with_root(make_cases, tmp_path, monkeypatch):
    root, cfg = make_cases(4)
    text = cfg.read_text().replace('name = "toy"', 'name = "toy"\nroot = "${BENCHBOX_DATA}/cases"')
    cfg.write_text(text)
    monkeypatch.setenv("BENCHBOX_DATA", str(root.parent))
    ds = open_cases(str(cfg), image_size=32)
    assert ds.root == root and ds.name == "toy"
    assert ds.config()["config"] == str(cfg)


def test_config_inside_the_data_folder(make_cases):
    root, cfg = make_cases(4)
    shutil.copy(cfg, root / "benchbox.toml")
    ds = open_cases(str(root), image_size=32)
    assert ds.modalities == ("FLAIR", "T1c")
    (root / "benchbox.toml").unlink()
    with pytest.raises(DataError, match="no case-folder config"):
        open_cases(str(root), image_size=32)


def test_choosing_the_fused_modalities(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(str(root), config=str(cfg), image_size=32, modalities="T1c,FLAIR")
    assert ds.modalities == ("T1c", "FLAIR")
    with pytest.raises(ConfigError, match="'T2' is not declared"):
        open_cases(str(root), config=str(cfg), image_size=32, modalities="T1c,T2")
    with pytest.raises(ConfigError, match="two different"):
        open_cases(str(root), config=str(cfg), image_size=32, modalities="T1c")


def test_options_from_the_command_line_are_parsed(make_cases):
    root, cfg = make_cases(4)
    ds = open_cases(
        str(root),
        config=str(cfg),
        image_size="32",
        percentiles="1,99",
        crop="false",
        lesion_fraction="none",
        val_fraction="0.25",
    )
    pre = ds.config()["preprocessing"]
    assert pre["image_size"] == 32 and pre["percentiles"] == (1.0, 99.0) and pre["crop"] is False
    with pytest.raises(ConfigError, match="crop='maybe'"):
        open_cases(str(root), config=str(cfg), image_size=32, crop="maybe")
    with pytest.raises(ConfigError, match="percentiles"):
        open_cases(str(root), config=str(cfg), image_size=32, percentiles="99,1")


def test_folds_from_the_command_line_cut_the_cases(make_cases):
    root, cfg = make_cases(4)
    tested = []
    for fold in range(4):
        ds = open_cases(str(root), config=str(cfg), image_size=32, folds="4", fold=str(fold))
        splits = ds.config()["splits"]
        assert [len(splits[k]) for k in ("train", "val", "test")] == [2, 1, 1]
        assert ds.config()["folds"] == 4 and ds.config()["fold"] == fold
        tested += splits["test"]
    assert len(set(tested)) == 4
    with pytest.raises(ConfigError, match="fold=4 is out of range"):
        open_cases(str(root), config=str(cfg), image_size=32, folds=4, fold=4)


def test_ambiguous_pattern(make_cases, tmp_path):
    root, cfg = make_cases(2)
    cfg.write_text(cfg.read_text().replace('FLAIR = "flair.nii.gz"', 'FLAIR = "*.nii.gz"'))
    with pytest.raises(
        DataError, match=r"case 'case00': modality FLAIR pattern '\*\.nii\.gz' matches"
    ):
        open_cases(str(root), config=str(cfg), image_size=32)


DICOM_CONFIG = """
fuse = ["CT", "MR"]
[modalities]
CT = "ct"
MR = "mr"
[preprocess]
norm = { CT = "ct", MR = "mri" }
[split]
val_fraction = 0
test_fraction = 0.5
"""


def test_dicom_series_folders_as_modalities(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    root = tmp_path / "dicom"
    for case in ("p1", "p2"):
        for mod, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
            (root / case / mod).mkdir(parents=True)
            shutil.copy(get_testdata_file(name), root / case / mod / name)
    cfg = tmp_path / "dicom.toml"
    cfg.write_text(DICOM_CONFIG)
    # The two series cover different fields of view: a geometry error names the case.
    with pytest.raises(
        DataError, match=r"case 'p1': modality MR .*mr does not match CT .*ct: size"
    ):
        open_cases(str(root), config=str(cfg), image_size=32)
    ds = open_cases(str(root), config=str(cfg), image_size=32, resample=True)
    assert ds.labels is None and ds.split("test")[0]["a"].shape == (1, 32, 32)
    assert ds.config()["dimension"] == "3d"


# -- real fixtures ------------------------------------------------------------------------
SCT_MT = """
cases = "mt"
fuse = ["MT0", "MT1"]
label = "mt1_seg.nii.gz"
[modalities]
MT0 = "mt0.nii.gz"
MT1 = "mt1.nii.gz"
[labels]
0 = "background"
1 = "spinal cord"
[split]
val_fraction = 0
test_fraction = 0
"""


@pytest.mark.data
def test_sct_oblique_anisotropic_case_roundtrip(shared_data, tmp_path):
    """A real oblique scan with 17 mm slices goes through the pipeline and back exactly."""
    root = shared_data("fixtures", "sct")
    cfg = tmp_path / "sct.toml"
    cfg.write_text(SCT_MT)
    ds = open_cases(str(root), config=str(cfg), image_size=64, fit="pad")
    (vol,) = ds.volumes("train")
    from benchbox.data.io import read_image

    seg = read_image(root / "mt" / "mt1_seg.nii.gz")
    assert vol.reference == read_image(root / "mt" / "mt0.nii.gz").geometry
    assert max(vol.spacing) == pytest.approx(17.0, rel=1e-4)  # slices stay 17 mm apart
    np.testing.assert_array_equal(vol.restore(vol.mask), seg.array)


BRATS_4 = """
cases = "brats-4modal-predicted"
fuse = ["T2-FLAIR", "T1c"]
label = "segmentation_model_output.nii.gz"
[modalities]
T1 = "t1n.nii.gz"
T1c = "t1c.nii.gz"
T2 = "t2w.nii.gz"
T2-FLAIR = "t2f.nii.gz"
[labels]
0 = "background"
1 = "necrosis"
2 = "oedema"
3 = "enhancing"
[split]
val_fraction = 0
test_fraction = 0
"""


@pytest.mark.data
def test_two_of_four_modalities(shared_data, tmp_path, monkeypatch):
    from benchbox.data import io

    root = shared_data("fixtures")
    cfg = tmp_path / "b4.toml"
    cfg.write_text(BRATS_4)
    read = []
    original = io.read_sitk
    monkeypatch.setattr(io, "read_sitk", lambda p: read.append(p.name) or original(p))
    ds = open_cases(str(root), config=str(cfg), image_size=64, modalities="T1,T2")
    assert ds.modalities == ("T1", "T2")
    assert sorted(read) == ["segmentation_model_output.nii.gz", "t1n.nii.gz", "t2w.nii.gz"]
    assert ds.config()["declared_modalities"] == ["T1", "T1c", "T2", "T2-FLAIR"]
    assert ds.config()["label_values_present"] == [0, 1, 2, 3]
