"""Faults during a run: a full disk at each write, SIGTERM, SIGKILL, the status heartbeat."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from benchbox import config as cfg
from benchbox import errors
from benchbox.cli import main
from benchbox.engine import runner
from benchbox.records import leaderboard, rundir, runs
from benchbox.scoring import examples

# A classic fusion baseline, fusion only: every file of a run is written, nothing trains.
CHEAP = {
    "fusion": "mean",
    "seg": "none",
    "image_size": 32,
    "eval_batch_size": 8,
    "examples": 2,
    "data_opts": {"synthetic": {"n_train": 4, "n_val": 2, "n_test": 4}},
}
RUN_FILES = [
    "checkpoint.pt",
    "config.json",
    "environment.json",
    "examples.png",
    "metrics.json",
    "per_case.csv",
    "status.json",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One prepared cheap run; each test executes it into its own output folder."""
    out = tmp_path_factory.mktemp("prepared")
    return runner.prepare(cfg.resolve(None, None, {**CHEAP, "out": str(out)}))


def execute_in(prepared, out: Path, **kwargs):
    prepared.config.out = str(out)
    return runner.execute(prepared, **kwargs)


def only_run(out: Path) -> Path:
    [run_dir] = (out / "runs").iterdir()
    return run_dir


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.mark.integration
def test_a_completed_run_records_who_ran_it(prepared, tmp_path):
    import socket

    result = execute_in(prepared, tmp_path)
    status = status_of(result.run_dir)
    assert status["status"] == "completed"
    assert status["pid"] == os.getpid() and status["host"] == socket.gethostname()
    assert status["heartbeat"].endswith("+00:00")
    assert sorted(p.name for p in result.run_dir.iterdir()) == RUN_FILES


WRITES = ["config.json", "environment.json", "metrics.json", "checkpoint.pt", "per_case.csv"]


@pytest.mark.integration
@pytest.mark.parametrize("name", [*WRITES, "examples.png", "synthetic.csv"])
def test_full_disk_at_each_write_is_one_line_status_failed_no_partial_file(
    prepared, tmp_path, disk_full, name
):
    disk_full(name)
    with pytest.raises(errors.WriteError) as info:
        execute_in(prepared, tmp_path)
    run_dir = only_run(tmp_path)
    target = tmp_path / "leaderboards" / name if name.endswith("synthetic.csv") else run_dir / name
    message = str(info.value)
    assert message == (
        f"no space left on device writing {target}; run {run_dir.name} is marked failed"
    )
    status = status_of(run_dir)
    assert status["status"] == "failed"
    assert status["error"] == f"no space left on device writing {target}; no leaderboard row"
    assert not target.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()


@pytest.mark.integration
def test_a_damaged_leaderboard_fails_the_run_with_the_line_and_no_row(prepared, tmp_path):
    board = tmp_path / "leaderboards" / "synthetic.csv"
    board.parent.mkdir()
    board.write_text("run_id,time,dataset,mi\nr0,2026-01-01T00:00:00,synthetic,7.07")
    with pytest.raises(errors.DataError) as info:
        execute_in(prepared, tmp_path)
    assert str(info.value).startswith(f"not appending to {board}: line 2 is cut short")
    status = status_of(only_run(tmp_path))
    assert status["status"] == "failed"
    assert status["error"].startswith(str(info.value)) and status["error"].endswith(
        "; no leaderboard row"
    )
    assert board.read_text().endswith("7.07")
    assert not leaderboard.cases_path(board).exists()


@pytest.mark.integration
def test_status_that_cannot_be_written_either_is_said_in_the_same_line(
    prepared, tmp_path, disk_full
):
    def fill_the_disk(message: str) -> None:  # once the run has started
        if message.startswith("run "):
            disk_full("checkpoint.pt", "status.json")

    with pytest.raises(errors.WriteError) as info:
        execute_in(prepared, tmp_path, log=fill_the_disk)
    run_dir = only_run(tmp_path)
    assert str(info.value) == (
        f"no space left on device writing {run_dir / 'checkpoint.pt'}; "
        f"{run_dir / 'status.json'} could not be updated either (no space left on device) "
        "and still says running"
    )
    assert status_of(run_dir)["status"] == "running"  # the last good status file, intact
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.integration
def test_full_disk_before_the_run_starts_leaves_no_run_folder(prepared, tmp_path, disk_full):
    disk_full("status.json")
    with pytest.raises(errors.WriteError, match=r"^no space left on device writing .*status"):
        execute_in(prepared, tmp_path)
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.integration
def test_a_raw_disk_error_from_a_library_is_one_line_too(prepared, tmp_path, monkeypatch):
    """An ENOSPC that did not pass through the atomic writer (e.g. a folder created by a
    plugin) still ends as one WriteError line and a failed status."""
    import errno

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/predictions")

    monkeypatch.setattr(examples, "save_examples", full)
    with pytest.raises(errors.WriteError, match=r"^no space left on device writing /x/pred"):
        execute_in(prepared, tmp_path)
    assert status_of(only_run(tmp_path))["status"] == "failed"


@pytest.mark.integration
def test_cli_full_disk_is_one_line_without_traceback(tmp_path, capsys, disk_full):
    disk_full("checkpoint.pt")
    args = ["run", "--fusion", "mean", "--seg", "none", "--image-size", "32", "--out"]
    data = ["--data-opt", "n_train=4", "--data-opt", "n_test=4", "--data-opt", "n_val=2"]
    with pytest.raises(SystemExit) as info:
        main([*args, str(tmp_path), *data])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: no space left on device writing") and "checkpoint.pt" in err
    assert status_of(only_run(tmp_path))["status"] == "failed"


class _Terminate:
    """A progress reporter whose first step receives a SIGTERM, as from `docker stop`."""

    def start(self, stage, total):
        pass

    def step(self, loss, images, seconds):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    def end(self):
        pass


@pytest.mark.integration
def test_sigterm_marks_the_run_interrupted_and_restores_the_handler(tmp_path):
    from benchbox.engine.interrupts import Terminated

    config = cfg.resolve(
        None,
        None,
        {
            **CHEAP,
            "fusion": "dual",
            "fusion_opts": {"width": 4, "depth": 2},
            "epochs": 1,
            "batch_size": 4,
            "warmup_steps": 0,
            "out": str(tmp_path),
        },
    )
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        runner.run(config, progress=_Terminate())
    assert signal.getsignal(signal.SIGTERM) is before
    status = status_of(only_run(tmp_path))
    assert status["status"] == "interrupted"
    assert status["error"] == "terminated by SIGTERM; no leaderboard row"
    assert not (tmp_path / "leaderboards").exists() or not list(
        (tmp_path / "leaderboards").glob("*.csv")
    )


def test_heartbeat_updates_the_status_and_stops_at_the_end(tmp_path, disk_full):
    run = rundir.RunDir(tmp_path, "r1", heartbeat_s=0.05).create()
    first = status_of(run.path)
    assert first["status"] == "running"
    deadline = time.monotonic() + 30
    while status_of(run.path)["elapsed_s"] == first["elapsed_s"]:
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.05)
    disk_full("status.json")  # a heartbeat that cannot be written is skipped, not fatal
    assert run.status.beat() is False
    disk_full()
    assert run.status.beat() is True
    run.set_status("completed")
    assert run.status._thread is not None and not run.status._thread.is_alive()
    assert run.status.beat() is False
    time.sleep(0.2)
    assert status_of(run.path)["status"] == "completed"
    assert runs.run_state(run.path).state == "completed"
