"""The built-in executors run real (tiny) runs, each in its own process."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchbox.sweep.driver import compare_completed, plan_runs, run_sweep
from benchbox.sweep.grid import Grid
from benchbox.sweep.ledger import read_ledger
from benchbox_plugins.executors.local import LocalExecutor

from .test_driver import TINY


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
