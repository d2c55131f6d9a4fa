"""``benchbox evaluate seg|fusion`` as a user runs it: folders in, table and files out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchbox.cli import main
from benchbox.data.io import write_image
from benchbox.metrics import segmentation as sm


@pytest.fixture
def seg_dirs(tmp_path: Path) -> Path:
    ref = np.zeros((6, 20, 20), np.uint8)
    ref[2:5, 5:12, 6:14] = 1
    ref[3, 7:10, 8:11] = 2
    preds = {"a": np.roll(ref, 1, axis=2), "b": np.where(ref == 2, 0, ref).astype(np.uint8)}
    for name, pred in preds.items():
        write_image(ref, tmp_path / "ref" / f"{name}.nii.gz", spacing=(3.0, 0.5, 0.5))
        write_image(pred, tmp_path / "pred" / f"{name}.nii.gz", spacing=(3.0, 0.5, 0.5))
    return tmp_path


def test_seg_prints_a_table_writes_files_and_reports_empty_cases(seg_dirs: Path, capsys) -> None:
    out = seg_dirs / "out"
    code = main([
        "evaluate", "seg", "--pred", str(seg_dirs / "pred"), "--ref", str(seg_dirs / "ref"),
        "--region", "tumour=1,2", "--labels", "2", "--nsd-tolerance", "1.5", "--out", str(out),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 case(s), NSD tolerance 1.5 mm" in captured.out
    for text in ("dice", "hd95", "tumour", "label2", "↓", "mm"):
        assert text in captured.out
    assert "label2: reference empty in 0, prediction empty in 1" in captured.out
    table = pd.read_csv(out / "per_case.csv")
    assert list(table["case_id"]) == ["a", "b"]
    assert table.loc[1, "dice_label2"] == 0.0
    ref = np.zeros((6, 20, 20), bool)
    ref[2:5, 5:12, 6:14] = True
    assert table.loc[0, "hd95_tumour"] == pytest.approx(
        sm.compute_hd95(np.roll(ref, 1, axis=2), ref, (3.0, 0.5, 0.5))
    )
    summary = dict(pd.read_csv(out / "summary.csv").itertuples(index=False))
    assert summary["n_pred_empty_label2"] == 1


def test_fusion_json(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(2))
    for folder, image in (("a", a), ("b", b), ("fused", np.maximum(a, b))):
        write_image(image, tmp_path / folder / "case.png")
    code = main([
        "evaluate", "fusion", "--fused", str(tmp_path / "fused"), "--a", str(tmp_path / "a"),
        "--b", str(tmp_path / "b"), "--out", str(tmp_path / "out"), "--format", "json",
        "--metric", "ssim", "--metric", "psnr",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "ssim_mean" in captured.out and "psnr" in captured.out and "qabf" not in captured.out
    rows = json.loads((tmp_path / "out" / "per_case.json").read_text())
    assert set(rows[0]) == {"case_id", "ssim_a", "ssim_b", "ssim_mean", "ssim_sum", "psnr"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seg", "--pred", "{tmp}/nope", "--ref", "{tmp}/ref"], "error: --pred folder"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref", "--region", "core"],
         "error: --region 'core': expected NAME=LABEL"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref", "--metric", "hd96"],
         "error: unknown metric 'hd96'; did you mean 'hd95'"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref", "--metric", "psnr"],
         "error: metric 'psnr' is a fusion metric, not segmentation"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref", "--format", "xlsx"],
         "error: unknown output format 'xlsx'"),
        (["fusion", "--fused", "{tmp}/pred", "--a", "{tmp}/ref", "--b", "{tmp}/ref"],
         "error: {tmp}/pred/a.nii.gz: fusion images must be 2D"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_1(seg_dirs: Path, capsys, args, message) -> None:
    args = [a.replace("{tmp}", str(seg_dirs)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *args, "--out", str(seg_dirs / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(message.replace("{tmp}", str(seg_dirs)))
    assert len(err.splitlines()) == 1


@pytest.mark.integration
def test_console_script_end_to_end(seg_dirs: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from benchbox.cli import main; sys.exit(main())",
         "evaluate", "seg", "--pred", "pred", "--ref", "ref"],
        cwd=seg_dirs, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "label1" in done.stdout and "label2" in done.stdout
    assert (seg_dirs / "benchbox-out" / "evaluate" / "seg" / "per_case.csv").is_file()


@pytest.mark.data
def test_real_spinal_cord_masks(tmp_path: Path, capsys) -> None:
    root = Path(os.environ.get("BENCHBOX_DATA", Path(__file__).parents[3] / "shared" / "data"))
    mt = root / "fixtures" / "sct" / "mt"
    if not mt.is_dir():
        pytest.skip(f"real data not found at {root} (set BENCHBOX_DATA)")
    for folder, name in (("ref", "mt1_seg.nii.gz"), ("pred", "mt0_seg.nii.gz")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mt.nii.gz").symlink_to(mt / name)
    code = main(["evaluate", "seg", "--pred", str(tmp_path / "pred"), "--ref",
                 str(tmp_path / "ref"), "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    row = pd.read_csv(tmp_path / "out" / "per_case.csv").iloc[0]
    from benchbox.data.io import read_image

    ref, pred = read_image(mt / "mt1_seg.nii.gz"), read_image(mt / "mt0_seg.nii.gz")
    assert ref.spacing == pytest.approx((17.0, 0.84375, 0.84375))
    assert row["hd95_label1"] == pytest.approx(
        sm.compute_hd95(pred.array == 1, ref.array == 1, ref.spacing)
    )
    assert 0 < row["dice_label1"] <= 1


def _bad_inputs(root: Path) -> None:
    """The bad inputs of issue 10 as files: NaN labels, label 7, missing results."""
    ref = np.zeros((6, 20, 20), np.uint8)
    ref[2:5, 5:12, 6:14] = 2
    ref[3, 7:10, 8:11] = 4
    nan = ref.astype(np.float32)
    nan[:] = np.nan
    write_image(nan, root / "nan" / "a.nii.gz")  # ITK < 6 alone would read zeros
    write_image(ref.astype(np.float32), root / "nan" / "b.nii.gz")
    seven = ref.copy()
    seven[0, :2, :2] = 7
    write_image(seven, root / "ref7" / "a.nii.gz")
    write_image(ref, root / "ref7" / "b.nii.gz")
    rng = np.random.default_rng(1)
    for case in ("c1", "c2", "c3"):
        a, b = (rng.integers(0, 256, (32, 32)).astype(np.uint8) for _ in range(2))
        write_image(a, root / "A" / f"{case}.png")
        write_image(b, root / "B" / f"{case}.png")
        if case != "c2":
            write_image(np.maximum(a, b), root / "F" / f"{case}.png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seg", "--pred", "{tmp}/nan", "--ref", "{tmp}/ref"],
         "error: {tmp}/nan/a.nii.gz: labels must be integers; the file holds NaN values"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref", "--labels", "5"],
         "error: region(s) label5 (5) hold no voxel in any reference or prediction file "
         "(labels found: 1, 2)"),
        (["seg", "--pred", "{tmp}/pred", "--ref", "{tmp}/ref7", "--region", "brats"],
         "error: label 7 in {tmp}/ref7/a.nii.gz: outside the regions' labels (1, 2, 3, 4)"),
        (["fusion", "--fused", "{tmp}/F", "--a", "{tmp}/A", "--b", "{tmp}/B"],
         "error: --fused folder {tmp}/F has no file for 1 of 3 source case(s): c2 "
         "(--allow-missing"),
        (["seg", "--pred", "{tmp}/F", "--ref", "{tmp}/ref"],
         "error: --pred folder {tmp}/F has no file for 2 of 2 reference case(s): a, b"),
    ],
)  # fmt: skip
def test_bad_results_are_one_line_exit_1_and_write_nothing(seg_dirs: Path, capsys, args, message):
    _bad_inputs(seg_dirs)
    args = [a.replace("{tmp}", str(seg_dirs)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *args, "--out", str(seg_dirs / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(message.replace("{tmp}", str(seg_dirs))), err
    assert len(err.splitlines()) == 1
    assert not (seg_dirs / "out").exists()


@pytest.mark.parametrize("task", ["seg", "fusion"])
def test_allow_missing_reports_the_missing_cases(seg_dirs: Path, capsys, task):
    _bad_inputs(seg_dirs)
    (seg_dirs / "pred" / "b.nii.gz").unlink()
    folders = {
        "seg": ["--pred", "pred", "--ref", "ref"],
        "fusion": ["--fused", "F", "--a", "A", "--b", "B"],
    }[task]
    out = seg_dirs / "out"
    code = main(
        [
            "evaluate",
            task,
            *(str(seg_dirs / f) if not f.startswith("-") else f for f in folders),
            "--allow-missing",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    missing = {"seg": "b", "fusion": "c2"}[task]
    assert "case(s) scored, 1 missing" in captured.out
    assert f"missing 1 case(s) without a result file, not scored: {missing}" in captured.out
    assert pd.read_csv(out / "missing.csv")["case_id"].tolist() == [missing]
    summary = dict(pd.read_csv(out / "summary.csv").itertuples(index=False))
    assert summary["n_missing"] == 1 and summary["n_cases"] == {"seg": 1, "fusion": 2}[task]
