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


@pytest.mark.integration
def test_dry_run_lists_the_product(tmp_path, capsys):
    code = main(
        ["sweep", "--fusion", "mean,dual", "--seed", "0,1,2", "--dry-run", "-o", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and out.count("mean") == 3 and out.count("dual") == 3
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.integration
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


@pytest.mark.integration
@pytest.mark.timeout(900)  # three sweeps' start-up and two runs: minutes on a busy 2-core CI
def test_ctrl_c_stops_the_sweep_and_the_same_command_resumes(tmp_path):
    # Ctrl-C comes 0.5 s after the first run's status file appears (written before its
    # dataset and models are built), so 80 training steps keep it running by then.
    args = ["--fusion", "dual", "--seed", "0,1", "--name", "s", "--jobs", "1", "--epochs", "2"]
    args += ["--data-opt", "n_train=160"]
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


def _running(tmp_path, deadline_s=240):
    from benchbox.records.status import read_status

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for path in (tmp_path / "runs").glob("*/status.json"):
            try:
                data = read_status(path)
            except (OSError, ValueError):
                continue
            if data.get("status") == "running":
                return path, int(data["pid"])
        time.sleep(0.1)
    raise AssertionError("no run started")


@pytest.mark.integration
def test_a_killed_driver_takes_its_worker_along(tmp_path):
    """kill -9 of the driver (or the OOM killer): its running worker ends too (SIGTERM,
    taken as Ctrl-C), instead of finishing on its own and appending a row the next
    sweep would append again."""
    from benchbox.records.status import read_status
    from benchbox.sweep.lifeline import owner_alive

    args = ["--fusion", "dual", "--seed", "0", "--name", "s", "--epochs", "200"]
    proc = _sweep(tmp_path, *args, "--data-opt", "n_train=64")
    try:
        status, worker = _running(tmp_path)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while owner_alive(worker, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not owner_alive(worker, None), "the worker outlived its driver"
    recorded = read_status(status)
    assert recorded["status"] == "interrupted" and "SIGTERM" in recorded["error"]
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()


@pytest.mark.integration
def test_an_unreachable_ray_address_is_one_line_not_a_hang(tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    args = ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]
    proc = _sweep(tmp_path, *args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in out and "Traceback" not in out

    with socket.socket() as listening:  # something answers, but not Ray
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        t0 = time.monotonic()
        args = ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]
        proc = _sweep(tmp_path, *args, "--executor-opt", "connect_timeout=5")
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, out
    assert f"no answer from 127.0.0.1:{port} within 5 s" in " ".join(out.split())
    assert "Traceback" not in out and time.monotonic() - t0 < 120
    # Ray's notes stay out of the sweep's output (its init runs in a helper thread)
    assert "SIGTERM handler is not set" not in out and "Connecting to existing" not in out
