"""Leaderboard CSVs: fixed column order, new metric columns, concurrent writers."""

from __future__ import annotations

import csv
import errno
import multiprocessing
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchbox import hookimpl
from benchbox.errors import DataError, WriteError
from benchbox.records import atomic, leaderboard


def _row(run_id: str, **metrics: float) -> dict:
    return {
        "run_id": run_id,
        "dataset": "synthetic",
        "fusion": "dual",
        "seed": 0,
        "config_hash": "abc",
        **metrics,
    }


def _leftovers(path: Path) -> list[str]:
    """Files beside the leaderboard other than it and its lock (temporary files...)."""
    return [p.name for p in path.parent.iterdir() if p.name not in (path.name, f"{path.name}.lock")]


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_column_blocks_in_fixed_order(tmp_path):
    path = leaderboard.append_row(tmp_path / "b.csv", _row("r1", ssim_mean=0.5, dice_lesion=0.8))
    header, rows = _read(path)
    n = len(leaderboard.LEADING)
    assert header[:n] == list(leaderboard.LEADING)
    assert header[n : n + 2] == ["ssim_mean", "dice_lesion"]
    assert header[n + 2 :] == list(leaderboard.TRAILING)
    assert rows == [
        {
            **{c: "" for c in header},
            "run_id": "r1",
            "dataset": "synthetic",
            "fusion": "dual",
            "seed": "0",
            "config_hash": "abc",
            "ssim_mean": "0.5",
            "dice_lesion": "0.8",
        }
    ]


def test_new_metric_columns_extend_the_header_and_keep_old_rows(tmp_path):
    path = tmp_path / "b.csv"
    leaderboard.append_row(path, _row("r1", ssim_mean=0.5))
    leaderboard.append_row(path, _row("r2", dice_lesion=0.7))
    header, rows = _read(path)
    assert header.index("ssim_mean") < header.index("dice_lesion") < header.index("train_img_s")
    assert [(r["run_id"], r["ssim_mean"], r["dice_lesion"]) for r in rows] == [
        ("r1", "0.5", ""),
        ("r2", "", "0.7"),
    ]
    assert leaderboard.read(path)["run_id"].tolist() == ["r1", "r2"]


def test_unknown_leading_or_trailing_values_are_kept(tmp_path):
    path = leaderboard.append_row(tmp_path / "b.csv", _row("r1", wall_s=12.3456789))
    _, [row] = _read(path)
    assert row["wall_s"] == "12.345679"


def _write_rows(path: str, worker: int, n: int, barrier: Any) -> None:
    barrier.wait()  # every writer starts at once, so their appends overlap
    for i in range(n):
        leaderboard.append_row(path, {"run_id": f"w{worker}-{i}", f"metric_{worker % 3}": float(i)})


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_concurrent_writers_lose_no_row_and_leave_no_half_row(tmp_path):
    # Without the lock, 8 writers released together by a barrier lose rows (checked by
    # hand: 30 appends each left 35 rows of 240); with it, none is lost.
    path = tmp_path / "leaderboards" / "synthetic.csv"
    workers, per_worker = 8, 30
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    procs = [
        ctx.Process(target=_write_rows, args=(str(path), w, per_worker, barrier))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0] * workers
    header, rows = _read(path)
    assert len(rows) == workers * per_worker
    assert {r["run_id"] for r in rows} == {
        f"w{w}-{i}" for w in range(workers) for i in range(per_worker)
    }
    assert {"metric_0", "metric_1", "metric_2"} <= set(header)
    with path.open() as f:
        lines = f.read().splitlines()
    assert all(line.count(",") == len(header) - 1 for line in lines)
    assert not _leftovers(path)


def test_failed_write_leaves_the_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "b.csv"
    leaderboard.append_row(path, _row("r1"))
    before = path.read_bytes()

    def boom(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        leaderboard.append_row(path, _row("r2"))
    assert path.read_bytes() == before
    assert not _leftovers(path)


def test_full_disk_is_one_error_and_the_csv_stays_intact(tmp_path, disk_full):
    path = tmp_path / "leaderboards" / "b.csv"
    cases = leaderboard.cases_path(path)
    leaderboard.append_row(path, _row("r1"), cases=[{"case_id": "c1", "dice": 0.5}])
    before = path.read_bytes(), cases.read_bytes()
    disk_full("b.csv")  # the row's file; its cases would fit
    with pytest.raises(WriteError) as info:
        leaderboard.append_row(path, _row("r2"), cases=[{"case_id": "c1", "dice": 0.7}])
    assert str(info.value) == f"no space left on device writing {path}"
    assert (path.read_bytes(), cases.read_bytes()) == before  # no orphan cases either
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_full_disk_at_the_lock_file_is_one_error(tmp_path, monkeypatch):
    import filelock

    path = tmp_path / "b.csv"

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(filelock.FileLock, "_acquire", full)
    with pytest.raises(WriteError, match=r"^no space left on device writing .*b\.csv$"):
        leaderboard.append_row(path, _row("r1"))
    assert not path.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_append_keeps_the_file_mode_and_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.csv"
        leaderboard.append_row(new, _row("r1"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not mkstemp's 0600
        shared = tmp_path / "shared.csv"
        leaderboard.append_row(shared, _row("r1"))
        os.chmod(shared, 0o664)  # a group-writable leaderboard stays so
        leaderboard.append_row(shared, _row("r2"))
        assert stat.S_IMODE(shared.stat().st_mode) == 0o664
        assert len(_read(shared)[1]) == 2
    finally:
        os.umask(old)


class HeadlineMetrics:
    """A package's metrics: one in the headline, one dict result showing one key, one not."""

    __name__ = "headline-metrics"

    @staticmethod
    @hookimpl
    def register_metrics(register):
        def sharpness(fused, a, b):
            return 0.0

        def spread(fused, a, b):
            return {"lo": 0.0, "hi": 1.0}

        def overlap(pred, ref, spacing):
            return 1.0

        register("sharpness", sharpness, task="fusion", higher_is_better=True, headline=2)
        register(
            "spread",
            spread,
            task="fusion",
            higher_is_better=True,
            headline=1,
            headline_key="hi",
        )
        register("quiet", sharpness, task="fusion", higher_is_better=True)
        register("overlap", overlap, task="segmentation", higher_is_better=True, headline=1)


def test_headline_columns_come_from_the_metrics_registrations():
    from benchbox.hooks.manager import create_registry

    registry = create_registry([HeadlineMetrics], entry_points=False, strict=True)
    columns = [
        "run_id", "quiet", "sharpness", "sharpness_std", "spread_hi", "spread_lo",
        "overlap_whole-tumour", "overlap_core", "overlap_core_std", "overlapping", "train_img_s",
    ]  # fmt: skip
    assert leaderboard.headline_columns(columns, registry=registry) == [
        "spread_hi", "sharpness", "overlap_whole-tumour", "overlap_core",
    ]  # fmt: skip
    assert leaderboard.headline_columns(columns, "segmentation", registry) == [
        "overlap_whole-tumour",
        "overlap_core",
    ]
    from benchbox.analysis.methods import method_table
    from benchbox.hooks.manager import use_registry

    frame = pd.DataFrame([dict.fromkeys(columns, 1.0) | {"run_id": "r", "fusion": "f"}])
    with use_registry(registry):
        table = method_table(frame, ["fusion"])
    assert [c for c in table.columns if not c.endswith("_std")] == [
        "fusion", "n", "runs", "spread_hi", "sharpness", "overlap_whole-tumour", "overlap_core",
        "train_img_s",
    ]  # fmt: skip


def test_the_built_in_metrics_headline_the_fusion_papers_columns():
    columns = ["ag", "dice_lesion", "en", "hd_lesion", "hd95_lesion", "mi", "ms-ssim", "nabf"]
    columns += ["psnr", "qabf", "scd", "sd", "sf", "ssim_a", "ssim_mean", "vif"]
    assert leaderboard.headline_columns(columns) == [
        "ssim_mean", "qabf", "vif", "mi", "en", "sd", "sf", "ag", "psnr",
        "dice_lesion", "hd95_lesion",
    ]  # fmt: skip


def test_leaderboard_command_renders_markdown(tmp_path, capsys):
    from benchbox.cli import main

    path = tmp_path / "b.csv"
    leaderboard.append_row(path, {**_row("r0", dice_lesion=0.75), "segmenter": "unet"})
    assert main(["leaderboard", str(path), "-m", "dice_lesion", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| fusion | segmenter | seeds | runs | dice_lesion |"
    assert lines[2] == "| dual | unet | 1 | 1 | 0.7500 |"
    for seed, dice in enumerate([0.8, 0.8]):
        row = _row(f"m{seed}", dice_lesion=dice)
        leaderboard.append_row(path, {**row, "fusion": "mean", "seed": seed, "segmenter": "unet"})
    main(["leaderboard", str(path), "-m", "dice_lesion", "--markdown"])
    assert capsys.readouterr().out.splitlines()[3] == "| mean | unet | 2 | 2 | 0.8000 ± 0.0 |"
    with pytest.raises(SystemExit) as info:
        main(["leaderboard", str(tmp_path / "missing.csv")])
    assert info.value.code == 1


def test_cases_travel_with_the_row_under_the_same_lock(tmp_path):
    path = tmp_path / "synthetic.csv"
    leaderboard.append_row(
        path,
        _row("r1", dice_lesion=0.75),
        cases=[
            {"case_id": "c0", "dice_lesion": np.float64(0.5), "ssim_mean": 0.25},
            {"case_id": "007", "dice_lesion": 1.0, "ssim_mean": float("nan")},
        ],
    )
    leaderboard.append_row(
        path, _row("r2", dice_lesion=0.7), cases=[{"case_id": "c0", "hd95_lesion": 2.5}]
    )
    assert leaderboard.cases_path(path) == tmp_path / "synthetic.cases.csv"
    header, rows = _read(tmp_path / "synthetic.cases.csv")
    assert header == ["run_id", "case_id", "dice_lesion", "ssim_mean", "hd95_lesion"]
    assert [tuple(r.values()) for r in rows] == [
        ("r1", "c0", "0.5", "0.25", ""),
        ("r1", "007", "1.0", "", ""),
        ("r2", "c0", "", "", "2.5"),
    ]
    frame = leaderboard.read_cases(path)
    assert frame["case_id"].tolist() == ["c0", "007", "c0"]
    assert not list(tmp_path.glob("*.tmp"))


def test_cases_without_a_case_id_leave_both_files_untouched(tmp_path):
    path = tmp_path / "b.csv"
    leaderboard.append_row(path, _row("r1"), cases=[{"case_id": "c0", "dice_lesion": 0.5}])
    before = path.read_bytes(), leaderboard.cases_path(path).read_bytes()
    with pytest.raises(ValueError, match="no case_id"):
        leaderboard.append_row(path, _row("r2"), cases=[{"dice_lesion": 0.5}])
    assert (path.read_bytes(), leaderboard.cases_path(path).read_bytes()) == before


def test_read_cases_of_a_leaderboard_without_companion_names_the_file(tmp_path):
    path = leaderboard.append_row(tmp_path / "b.csv", _row("r1"))
    with pytest.raises(Exception, match=r"b\.cases\.csv"):
        leaderboard.read_cases(path)


def test_a_corrupt_leaderboard_is_one_data_error(tmp_path):
    from benchbox.errors import DataError

    path = tmp_path / "broken.csv"
    path.write_text('run_id,dataset,fusion\n"unterminated,\n')
    with pytest.raises(DataError, match=r"broken\.csv: not a readable leaderboard CSV"):
        leaderboard.read(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not a readable leaderboard CSV"):
        leaderboard.read(path)


def _damaged(good: str) -> dict[str, tuple[bytes, str]]:
    """Damaged copies of ``good``, a header and two rows: the file's bytes and what the
    refusal must say."""
    header, first, second = good.splitlines()
    damaged = {
        "torn inside a row": (good[: good.index(second) + len(second) // 2], "line 3 has "),
        "torn inside the last field": (good[:-3], "line 3 is cut short"),
        "a row too long": (f"{header}\n{first},junk\n{second}\n", "line 2 has "),
        "garbage": ("leaderboard,of,things\n1,2,3\n", "line 1 is not a leaderboard header"),
        "a row without run_id": (f"{header}\n{first}\n,{second[3:]}\n", "line 3 has no run_id"),
        "an unclosed quote": (f'{header}\n{first}\n"r2,{second[3:]}\n', "line 3 does not parse"),
    }
    return {
        **{k: (text.encode(), expected) for k, (text, expected) in damaged.items()},
        "not text": (f"{header}\n{first}\n".encode() + b"\xff\xfe\x00", "line 3 is not UTF-8"),
    }


@pytest.mark.parametrize(
    "damage",
    [
        "torn inside a row",
        "torn inside the last field",
        "a row too long",
        "garbage",
        "a row without run_id",
        "an unclosed quote",
        "not text",
    ],
)
@pytest.mark.parametrize("which", ["leaderboard", "cases"])
def test_a_damaged_file_is_refused_by_line_and_neither_file_changes(tmp_path, damage, which):
    # Before: a torn row came back padded with empty fields (its metrics cut short), a
    # stranger's CSV was merged in with its columns; no warning either way.
    path = tmp_path / "b.csv"
    cases = leaderboard.cases_path(path)
    for run in ("r0", "r1"):
        row = _row(run, mi=7.072153, plugin_versions="mine=1.0.0")
        leaderboard.append_row(path, row, cases=[{"case_id": "c0", "en": 6.0, "mi": 7.072153}])
    target = path if which == "leaderboard" else cases
    damaged, expected = _damaged(target.read_text())[damage]
    target.write_bytes(damaged)
    before = path.read_bytes(), cases.read_bytes()
    with pytest.raises(DataError) as info:
        leaderboard.append_row(path, _row("r2", mi=7.1), cases=[{"case_id": "c0", "mi": 7.1}])
    message = str(info.value)
    assert message.startswith(f"not appending to {target}: ") and expected in message, message
    assert message.endswith("repair it or move it aside") and "\n" not in message
    assert (path.read_bytes(), cases.read_bytes()) == before
    assert not _leftovers(path) or _leftovers(path) == [cases.name]
