"""benchbox.scoring.folders: folders of label files and fused images, as benchbox evaluate
scores them, and the tables it writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchbox_plugins.metrics as builtin_metrics
from benchbox.data.io import write_image
from benchbox.errors import ConfigError, DataError
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.metrics import segmentation as sm
from benchbox.metrics.suite import score_fusion_case, score_segmentation_case
from benchbox.scoring import score_fusion_folders, score_segmentation_folders, write_scores

SPACING = (2.5, 0.8, 1.0)  # array order (z, y, x)


@pytest.fixture(autouse=True)
def _builtin_metrics():
    with use_registry(create_registry([builtin_metrics], entry_points=False, strict=True)):
        yield


def _labels(shift: int, drop_two: bool = False) -> np.ndarray:
    zz, yy, xx = np.mgrid[0:8, 0:16, 0:14]
    r = np.sqrt(((zz - 4) * 2.5) ** 2 + ((yy - 8 - shift) * 0.8) ** 2 + (xx - 7) ** 2)
    lab = np.zeros((8, 16, 14), np.uint8)
    lab[r < 6] = 1
    if not drop_two:
        lab[r < 3] = 2
    return lab


@pytest.fixture
def seg_folders(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    cases = {"case1": (_labels(1), _labels(0)), "case2": (_labels(2, drop_two=True), _labels(0))}
    for name, (pred, ref) in cases.items():
        write_image(ref, tmp_path / "ref" / f"{name}.nii.gz", spacing=SPACING)
        write_image(pred, tmp_path / "pred" / f"{name}.nii.gz", spacing=SPACING)
    return tmp_path / "pred", tmp_path / "ref", cases


# -- segmentation ----------------------------------------------------------------------
def test_scores_equal_the_suite_on_the_arrays_with_the_files_spacing(seg_folders) -> None:
    pred_dir, ref_dir, cases = seg_folders
    regions = {"lesion": (1, 2), "core": (2,)}
    scores = score_segmentation_folders(pred_dir, ref_dir, regions, nsd_tolerance=2.0)
    assert list(scores.per_case["case_id"]) == ["case1", "case2"]
    for _, row in scores.per_case.iterrows():
        pred, ref = cases[row["case_id"]]
        expected = score_segmentation_case(pred, ref, SPACING, regions, nsd_tolerance=2.0)
        assert {k: row[k] for k in expected} == pytest.approx(expected)
    case1 = scores.per_case.iloc[0]
    lesion = (cases["case1"][0] > 0, cases["case1"][1] > 0)
    assert case1["hd95_lesion"] == pytest.approx(sm.compute_hd95(*lesion, SPACING))
    assert case1["hd95_lesion"] != pytest.approx(sm.compute_hd95(*lesion, (1.0, 1.0, 1.0)))
    assert scores.summary["n_pred_empty_core"] == 1 and scores.summary["n_ref_empty_core"] == 0
    assert scores.settings["nsd_tolerance_mm"] == 2.0
    assert scores.settings["regions"] == {"lesion": [1, 2], "core": [2]}


def test_default_regions_are_the_labels_found(seg_folders) -> None:
    pred_dir, ref_dir, _ = seg_folders
    scores = score_segmentation_folders(pred_dir, ref_dir)
    assert scores.regions == {"label1": (1,), "label2": (2,)}
    assert "dice_label2" in scores.per_case.columns


def test_png_masks_and_float_labels(tmp_path: Path) -> None:
    ref = np.zeros((20, 24), np.uint8)
    ref[5:12, 6:15] = 1
    pred = np.roll(ref, 2, axis=1)
    write_image(ref, tmp_path / "ref" / "a.png")
    write_image(pred.astype(np.float32), tmp_path / "pred" / "a.nii.gz")
    scores = score_segmentation_folders(tmp_path / "pred", tmp_path / "ref", {"fg": (1,)})
    row = scores.per_case.iloc[0]
    assert row["dice_fg"] == pytest.approx(sm.compute_dice(pred, ref))
    assert row["hd_fg"] == pytest.approx(2.0)  # PNG spacing is 1 mm


def test_fractional_labels_are_refused(tmp_path: Path) -> None:
    ref = np.zeros((8, 8), np.float32)
    write_image(ref, tmp_path / "ref" / "a.nii.gz")
    write_image(ref + 0.5, tmp_path / "pred" / "a.nii.gz")
    with pytest.raises(DataError, match=r"pred/a\.nii\.gz: labels must be integers"):
        score_segmentation_folders(tmp_path / "pred", tmp_path / "ref", {"x": (1,)})


def test_a_missing_prediction_is_named(seg_folders) -> None:
    pred_dir, ref_dir, _ = seg_folders
    (pred_dir / "case2.nii.gz").unlink()
    with pytest.raises(
        DataError,
        match=r"--pred folder .* has no file for 1 of 2 reference case\(s\): case2 "
        r"\(--allow-missing",
    ):
        score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)})


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_allow_missing_scores_the_rest_and_lists_the_missing(seg_folders, tmp_path, fmt):
    pred_dir, ref_dir, _ = seg_folders
    complete = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)}, allow_missing=True)
    assert complete.missing == [] and complete.summary["n_missing"] == 0
    write_scores(complete, tmp_path / "out", fmt)
    (pred_dir / "case2.nii.gz").unlink()
    scores = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)}, allow_missing=True)
    assert scores.missing == ["case2"] and scores.per_case["case_id"].tolist() == ["case1"]
    assert scores.summary["n_cases"] == 1 and scores.summary["n_missing"] == 1
    assert scores.summary["dice_x"] == pytest.approx(complete.per_case["dice_x"].iloc[0])
    paths = write_scores(scores, tmp_path / "out", fmt)
    assert [p.name for p in paths] == [f"per_case.{fmt}", f"summary.{fmt}", f"missing.{fmt}"]
    if fmt == "csv":
        assert pd.read_csv(paths[2])["case_id"].tolist() == ["case2"]
        summary = dict(pd.read_csv(paths[1]).itertuples(index=False))
    else:
        assert json.loads(paths[2].read_text()) == ["case2"]
        document = json.loads(paths[1].read_text())
        assert document["missing"] == ["case2"]
        summary = document["summary"]
    assert summary["n_missing"] == 1
    # Scoring again with every prediction present removes the stale list.
    write_image(_labels(0), pred_dir / "case2.nii.gz", spacing=SPACING)
    again = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)}, allow_missing=True)
    write_scores(again, tmp_path / "out", fmt)
    assert not (tmp_path / "out" / f"missing.{fmt}").exists()
    for path in pred_dir.iterdir():
        path.unlink()
    write_image(_labels(0), pred_dir / "other.nii.gz", spacing=SPACING)
    with pytest.raises(DataError, match=r"no file for 2 of 2 reference case\(s\)"):
        score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)}, allow_missing=True)


def test_a_region_in_no_file_is_refused(seg_folders) -> None:
    pred_dir, ref_dir, _ = seg_folders
    with pytest.raises(
        DataError,
        match=r"region\(s\) label5 \(5\); gone \(8, 9\) hold no voxel in any reference or "
        r"prediction file \(labels found: 1, 2\)",
    ):
        score_segmentation_folders(
            pred_dir, ref_dir, {"label1": (1,), "label5": (5,), "gone": (8, 9)}
        )


def test_labels_outside_the_regions(seg_folders) -> None:
    pred_dir, ref_dir, cases = seg_folders
    ref = cases["case1"][1].copy()
    ref[0, 0, :3] = 7
    write_image(ref, ref_dir / "case1.nii.gz", spacing=SPACING)
    # Regions the user chose: the other labels are noted, scored as background.
    scores = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)})
    assert any(
        "label 2 in " in n and "label 7 in " in n and "case1.nii.gz" in n and "background" in n
        for n in scores.warnings
    )
    # A preset declares every label the files may hold: another is an error.
    regions = {"whole-tumour": (1, 2, 3, 4), "core": (1,)}
    with pytest.raises(DataError, match=r"label 7 in .*ref/case1\.nii\.gz: outside the regions"):
        score_segmentation_folders(pred_dir, ref_dir, regions, strict_labels=True)


def test_extra_predictions_are_noted_and_ignored(seg_folders) -> None:
    pred_dir, ref_dir, _ = seg_folders
    write_image(_labels(0), pred_dir / "case9.nii.gz", spacing=SPACING)
    (pred_dir / "notes.txt").write_text("not an image")
    scores = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)})
    assert len(scores.per_case) == 2
    assert any("case9" in note for note in scores.warnings)


def test_size_mismatch_names_the_file(seg_folders) -> None:
    pred_dir, ref_dir, _ = seg_folders
    # Before: "size (8, 15, 14)", the array's (z, y, x), beside spacings in (x, y, z).
    write_image(_labels(0)[:, :-1], pred_dir / "case1.nii.gz", spacing=(2.0, 1.0, 1.0))
    with pytest.raises(DataError) as info:
        score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)})
    assert str(info.value) == (
        f"{pred_dir / 'case1.nii.gz'}: its grid does not match the reference "
        f"{ref_dir / 'case1.nii.gz'}: size (x, y, z) (14, 15, 8) vs (14, 16, 8); "
        "spacing (x, y, z) (1, 1, 2) vs (1, 0.8, 2.5) mm"
    )


def test_spacing_mismatch_is_noted_and_the_reference_spacing_used(seg_folders) -> None:
    pred_dir, ref_dir, cases = seg_folders
    write_image(cases["case1"][0], pred_dir / "case1.nii.gz", spacing=(1.0, 1.0, 1.0))
    scores = score_segmentation_folders(pred_dir, ref_dir, {"x": (1, 2)})
    assert any("case1: prediction geometry differs" in n for n in scores.warnings)
    pred, ref = cases["case1"]
    assert scores.per_case.iloc[0]["hd95_x"] == pytest.approx(
        sm.compute_hd95(pred > 0, ref > 0, SPACING)
    )


def test_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--ref folder .*nowhere does not exist"):
        score_segmentation_folders(tmp_path, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"--ref folder .*empty holds no image file"):
        score_segmentation_folders(tmp_path / "empty", tmp_path / "empty")


def test_duplicate_case_names_are_refused(seg_folders) -> None:
    pred_dir, ref_dir, cases = seg_folders
    write_image(cases["case1"][0], pred_dir / "case1.nii", spacing=SPACING)
    with pytest.raises(DataError, match=r"case1\.nii and case1\.nii\.gz are both case 'case1'"):
        score_segmentation_folders(pred_dir, ref_dir)


def _gray(seed: int, shape=(64, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    x = ndimage.gaussian_filter(rng.random(shape), 2)
    return np.round(255 * (x - x.min()) / (x.max() - x.min())).astype(np.uint8)


@pytest.fixture
def fusion_folders(tmp_path: Path):
    a, b = _gray(0), _gray(1)
    fused = ((a.astype(int) + b) // 2).astype(np.uint8)
    write_image(a, tmp_path / "a" / "x.tif")
    write_image(b, tmp_path / "b" / "x.png")
    write_image(fused, tmp_path / "fused" / "x.png")
    return tmp_path, (fused, a, b)


def test_fusion_scores_equal_the_suite_on_images_over_255(fusion_folders) -> None:
    root, (fused, a, b) = fusion_folders
    scores = score_fusion_folders(root / "fused", root / "a", root / "b")
    expected = score_fusion_case(fused / 255.0, a / 255.0, b / 255.0, metrics=[
        e for e in scores.metrics if e.name != "ms-ssim"])  # fmt: skip
    row = scores.per_case.iloc[0]
    assert row["case_id"] == "x"
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert "ms-ssim" not in scores.per_case.columns
    assert any("too small for ms-ssim" in n for n in scores.warnings)


def test_fusion_size_mismatch_and_missing_source(fusion_folders) -> None:
    root, _ = fusion_folders
    write_image(_gray(6, (64, 60)), root / "b" / "x.png")
    with pytest.raises(
        DataError,
        match=r"b/x\.png: size \(x, y\) \(60, 64\) differs from the fused image .* \(64, 64\)$",
    ):
        score_fusion_folders(root / "fused", root / "a", root / "b")
    (root / "b" / "x.png").unlink()
    write_image(_gray(6), root / "b" / "y.png")
    with pytest.raises(DataError, match=r"--b folder .* has no file for 1 fused case\(s\).*: x"):
        score_fusion_folders(root / "fused", root / "a", root / "b")


def test_a_source_pair_without_a_fused_image(fusion_folders) -> None:
    root, (fused, a, b) = fusion_folders
    write_image(a, root / "a" / "y.png")
    write_image(b, root / "b" / "y.png")
    write_image(a, root / "a" / "only_a.png")  # not a pair: not a case
    with pytest.raises(
        DataError, match=r"--fused folder .* has no file for 1 of 2 source case\(s\): y"
    ):
        score_fusion_folders(root / "fused", root / "a", root / "b")
    scores = score_fusion_folders(root / "fused", root / "a", root / "b", allow_missing=True)
    assert scores.missing == ["y"] and scores.per_case["case_id"].tolist() == ["x"]
    assert scores.summary["n_missing"] == 1 and scores.summary["n_cases"] == 1
    write_image(fused, root / "fused" / "z.png")  # no source: ignored with a note
    scores = score_fusion_folders(root / "fused", root / "a", root / "b", allow_missing=True)
    assert any("z" in n and "ignored" in n for n in scores.warnings)


# -- output ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_write_scores_round_trips(seg_folders, tmp_path: Path, fmt: str) -> None:
    pred_dir, ref_dir, _ = seg_folders
    scores = score_segmentation_folders(pred_dir, ref_dir, {"lesion": (1, 2)})
    per_case_path, summary_path = write_scores(scores, tmp_path / "out", fmt)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"per_case.{fmt}", f"summary.{fmt}"]  # fmt: skip
    if fmt == "csv":
        table = pd.read_csv(per_case_path)
        summary = dict(pd.read_csv(summary_path).itertuples(index=False))
    else:
        table = pd.DataFrame(json.loads(per_case_path.read_text()))
        document = json.loads(summary_path.read_text())
        summary = document["summary"]
        assert document["settings"]["regions"] == {"lesion": [1, 2]}
    pd.testing.assert_frame_equal(table, scores.per_case, rtol=1e-9, check_dtype=False)
    assert summary == pytest.approx(scores.summary, rel=1e-9)
    assert all(math.isfinite(v) for v in summary.values())


def test_write_scores_refuses_an_unknown_format(seg_folders, tmp_path: Path) -> None:
    pred_dir, ref_dir, _ = seg_folders
    scores = score_segmentation_folders(pred_dir, ref_dir, {"x": (1,)})
    with pytest.raises(ConfigError, match="unknown output format 'xlsx'"):
        write_scores(scores, tmp_path, "xlsx")
