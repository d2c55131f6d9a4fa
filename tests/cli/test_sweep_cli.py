"""`benchbox sweep` as a user types it: dry run, bad input, a real sweep, resume, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from benchbox.cli import main
from benchbox.sweep.ledger import read_ledger

TINY = [
    "--seg", "none", "--image-size", "32", "--batch-size", "4", "--epochs", "1",
    "--warmup-steps", "0", "--examples", "1",
    "--data-opt", "n_train=8", "--data-opt", "n_val=2", "--data-opt", "n_test=4",
]  # fmt: skip


def test_dry_run_lists_the_product(tmp_path, capsys):
    code = main(
        ["sweep", "--fusion", "mean,dual", "--seed", "0,1,2", "--dry-run", "-o", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and out.count("mean") == 3 and out.count("dual") == 3
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fusion", "mean,dul"], "run fusion=dul: unknown fusion 'dul'; did you mean 'dual'"),
        (["--seed", "0,x"], "--seed takes whole numbers"),
        (["--seed", "0,,1"], "empty item"),
        (["--executor", "rey"], "unknown executor 'rey'; did you mean 'ray'?"),
        (["--grid", "no-such.toml"], "no-such.toml: no such file"),
        (["--epochs", "-1"], "epochs must be >= 0"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *args, "--dry-run", "-o", str(tmp_path)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()


def _sweep(tmp_path, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "benchbox", "sweep", *TINY, *args, "-o", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_ctrl_c_stops_the_sweep_and_the_same_command_resumes(tmp_path):
    # Enough steps (300) that the first run is still training when Ctrl-C comes.
    args = ["--fusion", "dual", "--seed", "0,1", "--name", "s", "--jobs", "1", "--epochs", "3"]
    args += ["--data-opt", "n_train=400"]
    proc = _sweep(tmp_path, *args)
    ledger = tmp_path / "sweeps" / "s" / "ledger.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = (
            list((tmp_path / "runs").glob("*/status.json")) if (tmp_path / "runs").exists() else []
        )
        if runs:
            break
        time.sleep(0.5)
    assert runs, "the first run never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "sweep interrupted" in out
    statuses = [e.status for e in read_ledger(ledger)]
    assert statuses == ["interrupted", "queued"], out
    status = json.loads(runs[0].read_text())
    assert status["status"] == "interrupted"  # the run folder says so too
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()

    proc = _sweep(tmp_path, *args)  # the same command resumes
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    entries = read_ledger(ledger)
    assert [e.status for e in entries] == ["completed", "completed"]
    assert "dual" in out and "ledger:" in out
