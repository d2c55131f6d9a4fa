"""`benchbox runs`: the state of each run, telling dead `running` runs (stale) from live."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchbox.cli import main
from benchbox.errors import ConfigError
from benchbox.records import runs
from benchbox.records.status import process_identity

NOW = time.time()  # "now" for the heartbeat ages (the CLI tests use the real clock)
HOST = socket.gethostname()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_run(root: Path, run_id: str, **status) -> Path:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    if status:
        document = {"run_id": run_id, "started": f"2027-01-15T08:00:{len(run_id):02d}"}
        (folder / "status.json").write_text(json.dumps({**document, **status}))
    return folder


def running(pid: int, host: str = HOST, age: float = 5.0, **extra) -> dict:
    return {"status": "running", "pid": pid, "host": host, "heartbeat": _iso(NOW - age), **extra}


@pytest.fixture
def folder(tmp_path):
    global NOW
    NOW = time.time()  # heartbeats are written relative to the time the test runs
    me = os.getpid()
    write_run(tmp_path, "done", status="completed", error=None, elapsed_s=12.5)
    write_run(tmp_path, "nan", status="failed", error="the joint loss became nan ...")
    write_run(tmp_path, "ctrl-c", status="interrupted", error="terminated by SIGTERM")
    write_run(tmp_path, "alive", **running(me, process_start=process_identity(me)))
    write_run(tmp_path, "killed", **running(_dead_pid()))
    write_run(tmp_path, "reused", **running(me, process_start="another-boot:123"))
    write_run(tmp_path, "hung", **running(me, age=3600))
    write_run(tmp_path, "remote-live", **running(4242, host="node-17", age=20))
    write_run(tmp_path, "remote-dead", **running(4242, host="node-17", age=900))
    empty = write_run(tmp_path, "truncated")
    (empty / "status.json").write_text("")
    write_run(tmp_path, "bare")  # a folder without a status file
    return tmp_path


def test_each_run_gets_its_state_and_reason(folder):
    found = {r.run_id: r for r in runs.list_runs(folder, now=NOW)}
    state = {k: r.state for k, r in found.items()}
    assert state == {
        "done": "completed",
        "nan": "failed",
        "ctrl-c": "interrupted",
        "alive": "running",
        "killed": "stale",
        "reused": "stale",
        "hung": "stale",
        "remote-live": "running",
        "remote-dead": "stale",
        "truncated": "unknown",
        "bare": "unknown",
    }
    assert found["killed"].reason == f"process {found['killed'].pid} is gone"
    assert "now belongs to another process" in found["reused"].reason
    assert (
        found["hung"].reason
        == f"no heartbeat for 60 min although process {os.getpid()} exists (hung?)"
    )
    assert found["remote-dead"].reason == "no heartbeat from node-17 for 15 min"
    assert found["remote-live"].heartbeat_age_s == pytest.approx(20, abs=1)  # whole seconds
    assert found["nan"].reason.startswith("the joint loss became nan")
    assert found["truncated"].reason.startswith("unreadable status.json")
    assert found["bare"].reason == "no status.json"
    assert found["done"].elapsed_s == 12.5


def test_threshold_and_state_filter(folder):
    assert [r.run_id for r in runs.list_runs(folder, states=["stale"], now=NOW)] == [
        r.run_id for r in runs.list_runs(folder, now=NOW) if r.state == "stale"
    ]
    # a longer threshold leaves the quiet remote run running; dead local pids stay stale
    lenient = {r.run_id: r.state for r in runs.list_runs(folder, stale_after=7200, now=NOW)}
    assert lenient["remote-dead"] == "running" and lenient["hung"] == "running"
    assert lenient["killed"] == "stale"
    with pytest.raises(ConfigError, match="unknown run state zombie"):
        runs.list_runs(folder, states=["zombie"])
    with pytest.raises(ConfigError, match="stale_after must be > 0"):
        runs.list_runs(folder, stale_after=0)


def test_a_status_without_heartbeat_is_judged_by_its_age(tmp_path):
    """Status files of older versions hold no pid or heartbeat: their mtime counts."""
    old = write_run(tmp_path, "old", status="running", error=None)
    os.utime(old / "status.json", (NOW - 3600, NOW - 3600))
    [state] = runs.list_runs(tmp_path, now=NOW)
    assert state.state == "stale" and state.reason == "no heartbeat for 60 min"
    assert runs.run_state(old, now=NOW - 3500).state == "running"


def test_folder_can_be_the_output_or_its_runs_folder(folder, tmp_path_factory):
    assert len(runs.list_runs(folder / "runs", now=NOW)) == len(runs.list_runs(folder, now=NOW))
    with pytest.raises(ConfigError, match="no such folder"):
        runs.list_runs(folder / "missing")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ConfigError, match="no runs here"):
        runs.list_runs(empty)


def test_cli_table_json_and_errors(folder, capsys):
    assert main(["runs", str(folder), "--stale-after", "300"]) == 0
    out = capsys.readouterr().out
    for text in ("killed", "remote-dead", "node-17"):
        assert text in out
    assert "2 running, 1 completed, 1 failed, 1 interrupted, 4 stale, 2 unknown" in out
    assert main(["runs", str(folder), "--json", "--state", "stale"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows and {r["state"] for r in rows} == {"stale"}
    assert {r["run_id"] for r in rows} == {"killed", "reused", "hung", "remote-dead"}
    assert rows[0]["reason"]
    with pytest.raises(SystemExit) as info:
        main(["runs", str(folder / "nowhere")])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such folder" in err


SLOW_RUN = [
    "run",
    "--fusion",
    "dual",
    "--seg",
    "none",
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--epochs",
    "400",
    "--fusion-opt",
    "width=4",
    "--fusion-opt",
    "depth=2",
    "--data-opt",
    "n_train=8",
    "--data-opt",
    "n_test=4",
    "--data-opt",
    "n_val=2",
]


@pytest.mark.integration
def test_sigterm_from_the_cli_is_exit_143_status_interrupted(tmp_path, training_cli_run):
    import signal

    proc, run_dir = training_cli_run(SLOW_RUN[1:], tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert (tmp_path / "run.log").read_text().strip().endswith("terminated (SIGTERM)")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert status["error"] == "terminated by SIGTERM; no leaderboard row"
    assert not list(tmp_path.glob("leaderboards/*.csv"))
    assert runs.run_state(run_dir).state == "interrupted"


@pytest.mark.integration
def test_sigkill_leaves_running_which_runs_reports_stale(tmp_path, training_cli_run):
    import signal

    proc, run_dir = training_cli_run(SLOW_RUN[1:], tmp_path)
    live = runs.run_state(run_dir)
    assert live.state == "running" and live.pid == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"
    dead = runs.run_state(run_dir)
    assert dead.state == "stale" and dead.reason == f"process {proc.pid} is gone"
