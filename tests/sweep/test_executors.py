"""The built-in executors run real (tiny) runs, each in its own process."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from benchbox.sweep.driver import compare_completed, plan_runs, run_sweep, sweep_name
from benchbox.sweep.grid import Grid
from benchbox.sweep.ledger import read_ledger
from benchbox_plugins.executors.local import LocalExecutor

from .test_driver import TINY

#: Every test here runs real workers (processes, forkservers, a local Ray).
pytestmark = pytest.mark.integration


def test_local_executor_runs_each_run_in_its_process_and_survives_a_failing_one(tmp_path):
    grid = Grid(axes={"dataset": ["synthetic", "pairs:/no/such/folder"], "seed": [0]})
    boards = tmp_path / "reference"
    overrides = {**TINY, "seg": "none", "out": str(tmp_path), "leaderboard_dir": str(boards)}
    runs = plan_runs(grid, overrides=overrides)
    result = run_sweep(runs, LocalExecutor(jobs=2), tmp_path)
    ok, bad = read_ledger(result.folder / "ledger.csv")
    assert ok.status == "completed", ok.error
    assert bad.status == "failed" and "/no/such/folder" in bad.error
    status = json.loads((tmp_path / "runs" / ok.run_id / "status.json").read_text())
    assert status["status"] == "completed"
    # --leaderboard-dir: the rows and their per-case companion go there, not to out/
    assert not (tmp_path / "leaderboards").exists()
    board = pd.read_csv(boards / "synthetic.csv")
    assert board["run_id"].tolist() == [ok.run_id]
    cases = pd.read_csv(boards / "synthetic.cases.csv")
    assert set(cases["run_id"]) == {ok.run_id}
    [(path, by, table)] = compare_completed(result, {run.config.leaderboards for run in runs})
    assert path == boards / "synthetic.csv" and by == ["dataset"] and table["n"].tolist() == [1]
    logs = sorted((result.folder / "logs").iterdir())
    assert len(logs) == 2 and "no/such/folder" in logs[1].read_text()


def test_local_executor_divides_the_cores_between_its_workers():
    assert LocalExecutor(jobs=1, threads=3).threads == 3
    one = LocalExecutor(jobs=1).threads
    assert LocalExecutor(jobs=2).threads == max(1, one // 2)


def test_a_prepared_forkserver_is_the_one_the_runs_fork_from_and_ends_with_the_sweep(
    tmp_path, monkeypatch
):
    from benchbox.sweep.executor import ForkServer, prepared
    from benchbox_plugins.executors import local

    started: list[ForkServer] = []

    class Counted(ForkServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(local, "ForkServer", Counted)
    grid = Grid(axes={"seed": [0]})
    overrides = {**TINY, "seg": "none", "out": str(tmp_path)}
    with prepared("local", {"jobs": 1}) as executor:
        server = executor._server
        assert server is not None and server.alive  # started before the runs are planned
        runs = plan_runs(grid, overrides=overrides)
        result = run_sweep(runs, executor, tmp_path)
        assert executor._server is None  # the sweep's end closed it
    [row] = read_ledger(result.folder / "ledger.csv")
    assert row.status == "completed", row.error
    assert server.proc.poll() is not None  # the server process has exited
    assert started == [server]  # the run was forked from the prepared server, no other
    # planning fails after prepare: the server is closed all the same
    with pytest.raises(ZeroDivisionError), prepared("local", {"jobs": 1}) as executor:
        server = executor._server
        raise ZeroDivisionError
    assert executor._server is None and server is not None and server.proc.poll() is not None


def test_ray_executor_runs_a_sweep_on_a_local_ray(tmp_path):
    pytest.importorskip("ray")
    import ray

    from benchbox_plugins.executors.ray import RayExecutor

    grid = Grid(axes={"seed": [0, 1]})
    runs = plan_runs(grid, overrides={**TINY, "seg": "none", "out": str(tmp_path)})
    try:
        result = run_sweep(runs, RayExecutor(num_cpus=2, cpus_per_run=1), tmp_path)
    finally:
        ray.shutdown()
    entries = read_ledger(result.folder / "ledger.csv")
    assert [e.status for e in entries] == ["completed", "completed"], [e.error for e in entries]
    board = pd.read_csv(tmp_path / "leaderboards" / "synthetic.csv")
    assert sorted(board["seed"]) == [0, 1]


def test_ray_executor_without_ray_names_the_extra(monkeypatch):
    import sys

    from benchbox.errors import ConfigError
    from benchbox.sweep.executor import build_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "benchbox\[ray\]"'):
        build_executor("ray", {})


def test_executor_options_are_checked():
    from benchbox.errors import ConfigError
    from benchbox.sweep.executor import build_executor

    with pytest.raises(ConfigError, match="has no parameter 'job'"):
        build_executor("local", {"job": 2})
    with pytest.raises(ConfigError, match="jobs must be >= 1"):
        build_executor("local", {"jobs": 0})
    with pytest.raises(ConfigError, match="start must be one of forkserver, process, got 'fork'"):
        build_executor("local", {"start": "fork"})
    assert build_executor("local", {"start": "process"}).start == "process"


def _plan(tmp_path, **settings):
    return plan_runs(Grid(axes={"seed": [0]}), overrides={**TINY, "out": str(tmp_path), **settings})


def test_a_crash_a_nan_and_a_killed_worker_leave_the_other_runs_untouched(tmp_path):
    """Four runs, two at a time: one whose dataset cannot be read, one whose fused
    image turns NaN, one whose process is killed (SIGKILL, as the out-of-memory killer
    does) while it trains, and a normal one. The normal one completes with its row; each
    of the others is a failed line naming its cause, with its run folder marked failed."""
    from benchbox.records.status import read_status

    runs = [
        *_plan(tmp_path, seg="none"),
        *_plan(tmp_path, seg="none", dataset="pairs:/no/such/folder"),
        *_plan(tmp_path, seg="attunet", fusion="dual", lr=1e6, fusion_lr=1e6),
        *_plan(tmp_path, seg="none", epochs=200, data_opts={"synthetic": {"n_train": 64}}),
    ]
    done: list[object] = []
    sweep = threading.Thread(
        target=lambda: done.append(run_sweep(runs, LocalExecutor(jobs=2), tmp_path)), daemon=True
    )
    sweep.start()
    ledger = tmp_path / "sweeps" / sweep_name(runs) / "ledger.csv"
    deadline = time.monotonic() + 180
    killed = None
    while killed is None and time.monotonic() < deadline:
        entry = read_ledger(ledger)[3] if ledger.exists() else None
        status = tmp_path / "runs" / (entry.run_id if entry else "-") / "status.json"
        try:
            data = read_status(status)
        except (OSError, ValueError):
            data = {}
        if data.get("status") == "running":
            os.kill(int(data["pid"]), signal.SIGKILL)
            killed = entry.run_id
        time.sleep(0.05)
    sweep.join(240)
    assert killed and done, "the long run never ran, or the sweep never ended"
    ok, crashed, nan, dead = read_ledger(ledger)
    assert ok.status == "completed", ok.error
    assert crashed.status == "failed" and "/no/such/folder" in crashed.error
    assert nan.status == "failed" and ("NaN" in nan.error or "non-finite" in nan.error), nan.error
    assert dead.status == "failed" and "killed by signal 9 (SIGKILL)" in dead.error
    assert dead.run_id == killed
    for entry, status in ((ok, "completed"), (nan, "failed"), (dead, "failed")):
        assert read_status(tmp_path / "runs" / entry.run_id / "status.json")["status"] == status
    board = pd.read_csv(tmp_path / "leaderboards" / "synthetic.csv")
    assert board["run_id"].tolist() == [ok.run_id]


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_a_killed_ray_worker_takes_its_run_along_and_is_not_retried(tmp_path):
    """The Ray worker running a task is killed mid-run: its run's process ends with it
    (no row appears later), Ray does not run the task again, and the ledger says failed
    with the run's id."""
    pytest.importorskip("ray")
    import ray

    from benchbox.records.status import read_status
    from benchbox_plugins.executors.ray import RayExecutor

    runs = _plan(tmp_path, seg="none", epochs=200, data_opts={"synthetic": {"n_train": 64}})
    done: list[object] = []
    executor = RayExecutor(num_cpus=1, cpus_per_run=1)
    sweep = threading.Thread(
        target=lambda: done.append(run_sweep(runs, executor, tmp_path)), daemon=True
    )
    try:
        sweep.start()
        ledger = tmp_path / "sweeps" / sweep_name(runs) / "ledger.csv"
        deadline = time.monotonic() + 240
        run_pid = None
        while run_pid is None and time.monotonic() < deadline:
            entry = read_ledger(ledger)[0] if ledger.exists() else None
            try:
                data = read_status(
                    tmp_path / "runs" / (entry.run_id if entry else "-") / "status.json"
                )
            except (OSError, ValueError):
                data = {}
            if data.get("status") == "running":
                run_pid = int(data["pid"])
            time.sleep(0.05)
        assert run_pid, "the run never started"
        ray_worker = _parent(_parent(run_pid))  # run <- forkserver <- Ray worker
        assert "ray" in Path(f"/proc/{ray_worker}/cmdline").read_text().lower()
        os.kill(ray_worker, signal.SIGKILL)
        sweep.join(120)
    finally:
        ray.shutdown()
    assert done, "the sweep never ended"
    (entry,) = read_ledger(ledger)
    assert entry.status == "failed" and "Ray worker" in entry.error, entry.error
    # The sweep learns of the failure from Ray at once; the run learns of it through its
    # lifeline and stops at its next interrupt check, which on a loaded 2-core machine can
    # be seconds later: wait for the run's own record, then for its process.
    status_file = tmp_path / "runs" / entry.run_id / "status.json"
    deadline = time.monotonic() + 60
    while read_status(status_file)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    status = read_status(status_file)
    assert status["status"] == "interrupted" and "SIGTERM" in status["error"]
    while Path(f"/proc/{run_pid}").exists() and time.monotonic() < deadline:
        if ") Z " in Path(f"/proc/{run_pid}/stat").read_text():
            break
        time.sleep(0.1)
    gone = not Path(f"/proc/{run_pid}").exists()
    assert gone or ") Z " in Path(f"/proc/{run_pid}/stat").read_text()  # a zombie at most
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()
    assert len(list((tmp_path / "runs").iterdir())) == 1  # not retried
