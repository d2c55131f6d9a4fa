"""Distillation (``--teacher``, ``--distill``): pre-flight refusals, the loss, the records.

One tiny teacher run is trained per module; the refusals work on copies of its folder,
edited to be broken in one way each, and never train.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from benchbox import config as cfg
from benchbox import errors
from benchbox.cli import main
from benchbox.engine import runner
from benchbox.engine.models import check, joint_loss
from benchbox.engine.prepare import prepare
from benchbox.engine.restore import load_run
from benchbox.hooks.manager import get_registry
from benchbox.hooks.registry import Entry
from benchbox.records import leaderboard
from benchbox.records.status import process_identity, utc_now
from benchbox.testing import tiny_run_settings


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    return runner.run(cfg.resolve(None, None, tiny_run_settings(out=str(out)))).run_dir


def student(out: Path, teacher: Path | None, **overrides: Any) -> cfg.RunConfig:
    extra: dict[str, Any] = {"teacher": str(teacher), "distill": ["logits"]} if teacher else {}
    return cfg.resolve(None, None, tiny_run_settings(out=str(out), **{**extra, **overrides}))


def copy_run(teacher: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(teacher, tmp_path / "teachers" / teacher.name))


def edit_json(path: Path, **changes: Any) -> None:
    record = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key].update(value)
        else:
            record[key] = value
    path.write_text(json.dumps(record))


# -- the pre-flight and the checks after the dataset is built ---------------------------
def _running(run: Path) -> None:
    pid = os.getpid()
    status = {"status": "running", "pid": pid, "host": socket.gethostname()}
    edit_json(
        run / "status.json", **status, process_start=process_identity(pid), heartbeat=utc_now()
    )


def _corrupt(run: Path) -> None:
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


BROKEN_BEFORE_DATA = {
    "missing": (lambda run: shutil.rmtree(run), {}, "no such run folder"),
    "running": (_running, {}, "the run is running; a teacher must be a completed run"),
    "failed": (
        lambda run: edit_json(run / "status.json", status="failed", error="boom"),
        {},
        r"the run is failed \(boom\)",
    ),
    "interrupted": (
        lambda run: edit_json(run / "status.json", status="interrupted", error=None),
        {},
        "the run is interrupted",
    ),
    "no segmenter": (
        lambda run: edit_json(run / "config.json", seg="none"),
        {},
        r"--distill logits compares segmentation outputs, but --teacher .* has no segmenter",
    ),
    "other data": (
        lambda run: None,
        {"data_seed": 3},
        r"was trained on other data: its data_seed 0 \(this run: 3\)",
    ),
    "other size": (lambda run: None, {"image_size": 64}, r"its image_size 32 \(this run: 64\)"),
    "corrupt checkpoint": (_corrupt, {}, r"checkpoint.pt cannot be read"),
    "no checkpoint weights": (
        lambda run: torch.save({"fusion": {}}, run / "checkpoint.pt"),
        {},
        "checkpoint.pt holds no segmenter weights",
    ),
    "student without fusion": (
        lambda run: None,
        {"fusion": "none", "distill": ["fused"]},
        "--distill fused compares fusion outputs, but this run has no fusion model",
    ),
    "frozen fusion": (
        lambda run: None,
        {"freeze_fusion": True, "distill": ["fused"]},
        "--distill fused trains the fusion model, which --freeze-fusion keeps fixed",
    ),
    "unknown distiller": (lambda run: None, {"distill": ["logitz"]}, "did you mean 'logits'"),
    "bad distiller option": (
        lambda run: None,
        {"distill_opts": {"logits": {"temprature": 2}}},
        "distiller 'logits' has no parameter 'temprature'; did you mean temperature",
    ),
}


@pytest.mark.parametrize("case", BROKEN_BEFORE_DATA)
def test_a_bad_teacher_is_refused_by_the_pre_flight_check(teacher, tmp_path, case):
    breaks, overrides, match = BROKEN_BEFORE_DATA[case]
    run = copy_run(teacher, tmp_path)
    breaks(run)
    with pytest.raises((errors.ConfigError, errors.UnknownComponentError), match=match):
        check(student(tmp_path, run, **overrides), get_registry())


BROKEN_AFTER_DATA = {
    "classes": (
        {"model_io": {"labels": {"0": "background", "1": "lesion", "2": "oedema"}}},
        r"has 3 classes \(background, lesion, oedema\), this run's dataset 2",
    ),
    "modalities": (
        {"model_io": {"modalities": ["MRI", "CT"]}},
        "was trained on modalities MRI \\+ CT, this run's dataset gives CT \\+ MRI",
    ),
    "dataset version": (
        {"dataset_config": {"lesion_free": 0.5}},
        r"another version of the dataset: its lesion_free 0.5 \(this run: 0.25\)",
    ),
}


@pytest.mark.parametrize("case", BROKEN_AFTER_DATA)
def test_what_only_the_built_dataset_tells_is_refused_before_training(teacher, tmp_path, case):
    changes, match = BROKEN_AFTER_DATA[case]
    run = copy_run(teacher, tmp_path)
    edit_json(run / "config.json", **changes)
    config = student(tmp_path / "out", run)
    check(config, get_registry())  # the record allows it until the dataset is built
    with pytest.raises(errors.ConfigError, match=match):
        prepare(config)
    assert not list((tmp_path / "out").glob("runs/*"))  # no run started


#: The tiny run's settings as options: the teacher's dataset, so only the error tested stops.
TINY_ARGS = ["--image-size", "32"]
TINY_ARGS += [f"--data-opt=n_{split}={n}" for split, n in (("train", 8), ("val", 2), ("test", 4))]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--distill", "logits"], "--distill logits needs --teacher RUN_DIR"),
        (["--teacher", "{teacher}"], "needs at least one --distill NAME"),
        (["--teacher", "{missing}", "--distill", "logits"], "no such run folder"),
        (["--teacher", "{corrupt}", "--distill", "logits"], "checkpoint.pt cannot be read"),
        (
            ["--teacher", "{teacher}", "--distill", "logits", "--distill-opt", "cwd.weight=2"],
            "--distill-opt cwd.* given, but 'cwd' is not distilled",
        ),
        (
            ["--teacher", "{teacher}", "--distill", "logits", "--distill-weight", "0"],
            "distill_weight must be a finite number > 0",
        ),
    ],
)
def test_the_command_line_says_one_line_and_builds_no_dataset(
    teacher, tmp_path, capsys, monkeypatch, args, match
):
    corrupt = copy_run(teacher, tmp_path)
    _corrupt(corrupt)
    paths = {"teacher": teacher, "missing": tmp_path / "nope", "corrupt": corrupt}
    args = [a.format(**paths) for a in args]
    built = []
    real_build = Entry.build

    def spy(self: Entry, *a: Any, **kw: Any) -> Any:
        built.append(self.kind)
        return real_build(self, *a, **kw)

    monkeypatch.setattr(Entry, "build", spy)
    with pytest.raises(SystemExit) as info:
        main(["run", "--out", str(tmp_path / "out"), *TINY_ARGS, *args])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert match in " ".join(err.split())
    assert "dataset" not in built


# -- the loss and the run ---------------------------------------------------------------
def test_the_teacher_is_frozen_and_the_student_starts_as_if_alone(teacher, tmp_path):
    alone = prepare(student(tmp_path, None))
    taught = prepare(student(tmp_path, teacher, distill=["logits", "fused"], distill_weight=0.5))
    for name, module in alone.models.modules().items():
        other = taught.models.modules()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), name
    d = taught.models.distillation
    assert d is not None and d.teacher["run_id"] == teacher.name
    for module in d.modules():
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    restored = load_run(teacher)
    for got, want in ((d.fusion, restored.fusion), (d.segmenter, restored.segmenter)):
        assert all(torch.equal(v, want.state_dict()[k]) for k, v in got.state_dict().items())

    # The step's loss is the run's own plus the weight times the distillers' sum.
    batch = next(iter(torch.utils.data.DataLoader(taught.dataset.split("train"), batch_size=4)))
    batch = {k: batch[k] for k in ("a", "b", "mask")}
    torch.manual_seed(0)
    with_teacher = joint_loss(taught.models, batch, fusion_weight=0.1, train_fusion=True)
    taught.models.distillation = None
    torch.manual_seed(0)
    without = joint_loss(taught.models, batch, fusion_weight=0.1, train_fusion=True)
    fused = taught.models.fusion(batch["a"], batch["b"])
    logits = taught.models.segmenter(fused)
    with torch.no_grad():
        t_fused = restored.fusion(batch["a"], batch["b"])
        t_logits = restored.segmenter(t_fused)
    by_hand = sum(
        module({"fused": fused, "logits": logits}, {"fused": t_fused, "logits": t_logits})
        for _, module in d.distillers
    )
    assert with_teacher.item() == pytest.approx(without.item() + 0.5 * by_hand.item(), rel=1e-5)


def test_a_distilled_run_records_its_teacher_and_compares_with_it(teacher, tmp_path):
    board_dir = tmp_path / "boards"
    shutil.copytree(teacher.parents[1] / "leaderboards", board_dir)
    before = (teacher / "checkpoint.pt").read_bytes()
    config = student(
        tmp_path, teacher, distill=["logits", "cwd"], distill_opts={"logits": {"temperature": 2}},
        leaderboard_dir=str(board_dir),
    )  # fmt: skip
    result = runner.run(config)
    assert (teacher / "checkpoint.pt").read_bytes() == before  # read-only

    record = json.loads((result.run_dir / "metrics.json").read_text())
    assert record["distillation"]["teacher"]["run_id"] == teacher.name
    assert record["distillation"]["distillers"] == {"logits": {"temperature": 2}, "cwd": {}}
    assert record["throughput"]["teacher_in_train_step"] is True
    written = json.loads((result.run_dir / "config.json").read_text())
    assert written["teacher"] == str(teacher) and written["distill"] == ["logits", "cwd"]
    # The student alone: the teacher's own config (the same tiny pair, untaught).
    alone = json.loads((teacher / "config.json").read_text())
    assert written["config_hash"] != alone["config_hash"]
    assert record["profile"] == json.loads((teacher / "metrics.json").read_text())["profile"]

    board = leaderboard.read(board_dir / "synthetic.csv")
    rows = board.set_index("run_id")
    assert rows.loc[result.run_id, "teacher"] == teacher.name
    assert rows.loc[result.run_id, "distill"] == "logits(temperature=2)+cwd"
    assert pd.isna(rows.loc[teacher.name, "teacher"]) and pd.isna(rows.loc[teacher.name, "distill"])

    from benchbox.analysis.compare import compare

    comparison = compare(board_dir / "synthetic.csv", "dice_lesion", by=("segmenter", "distill"))
    assert sorted(comparison.methods) == ["attunet / logits(temperature=2)+cwd", "attunet / none"]

    # The student is restored (predict, export) alone: its teacher is not even read.
    edit_json(result.run_dir / "config.json", teacher=str(tmp_path / "deleted"))
    restored = load_run(result.run_dir)
    assert set(restored.models()) == {"fusion", "segmenter"}


def test_bench_has_no_teacher(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--teacher", "runs/x"])
    assert info.value.code == 2
    assert "No such option: --teacher" in capsys.readouterr().err


def test_a_sweep_plans_distilled_runs_and_checks_each_teacher(teacher, tmp_path):
    from benchbox.sweep.driver import plan_runs
    from benchbox.sweep.grid import Grid

    base = tiny_run_settings(out=str(tmp_path), teacher=str(teacher))
    grid = Grid(base=base, axes={"distill": ["logits", "cwd"], "distill_weight": [0.5, 1.0]})
    runs = plan_runs(grid)
    assert len({r.config_hash for r in runs}) == 4
    assert [r.config.distill for r in runs] == [["logits"], ["logits"], ["cwd"], ["cwd"]]
    alone = Grid(base={**base, "teacher": "none"}, axes={"distill": ["none"]})
    assert plan_runs(alone)[0].config.teacher is None
    broken = Grid(
        base={**base, "distill": ["logits"]},
        axes={"teacher": [str(teacher), str(tmp_path / "nope")]},
    )
    with pytest.raises(errors.ConfigError, match=r"run teacher=.*nope: --teacher .*no such run"):
        plan_runs(broken)


def test_a_teacher_named_by_its_config_hash_is_found_under_out(teacher, tmp_path):
    recorded = json.loads((teacher / "config.json").read_text())["config_hash"]

    def named(out: Path, hash_: str) -> cfg.RunConfig:
        config = student(out, teacher, distill=["cwd"])
        config.teacher = f"hash:{hash_}"
        return config

    out = teacher.parents[1]
    assert check(named(out, recorded), get_registry())["distiller:cwd"].name == "cwd"
    assert named(out, recorded).hash() == student(out, teacher, distill=["cwd"]).hash()
    with pytest.raises(errors.ConfigError, match=r"no completed run in .* has config hash 0000"):
        check(named(out, "0000"), get_registry())
    shutil.copytree(teacher, tmp_path / "runs" / "twin")
    shutil.copytree(teacher, tmp_path / "runs" / "twin2")
    with pytest.raises(errors.ConfigError, match=r"2 completed runs .* \(twin, twin2\)"):
        check(named(tmp_path, recorded), get_registry())
