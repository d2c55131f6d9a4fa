"""The built-in trackers against the real libraries: TensorBoard and MLflow."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from benchbox import config as cfg
from benchbox import errors
from benchbox.cli import main
from benchbox.engine import runner
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(epochs=2)
TINY_ARGS = ["--image-size", "32", "--epochs", "1", "--fusion-epochs", "1"]


@pytest.fixture
def no_mlflow_env(monkeypatch):
    """No MLflow setting from the environment: the tracker's defaults apply."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.integration
def test_tensorboard_and_mlflow_show_the_numbers_of_the_record(
    tmp_path, monkeypatch, no_mlflow_env
):
    """With no MLflow setting at all, the run is logged to <out>/mlflow/mlflow.db, and
    nothing is written to the working folder."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = cfg.resolve(
        None, None, {**TINY, "out": str(out), "trackers": ["tensorboard", "mlflow"]}
    )
    result = runner.run(config)
    assert not list(cwd.iterdir())
    record = json.loads(result.files["metrics"].read_text())
    expected = {}
    for e in record["curve"]:
        expected[(f"{e['stage']}/train_loss", e["epoch"])] = e["train_loss"]
        for k, v in e["val"].items():
            expected[(f"{e['stage']}/val_{k}", e["epoch"])] = v
    assert ("joint/val_dice", 2) in expected and ("fusion/train_loss", 1) in expected

    events = EventAccumulator(str(result.run_dir / "tensorboard")).Reload()
    tb = {
        (tag, ev.step): ev.value for tag in events.Tags()["scalars"] for ev in events.Scalars(tag)
    }
    assert "examples" in events.Tags()["images"]
    assert tb[("selection/epoch", 0)] == record["selection"]["epoch"]

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("benchbox").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == result.run_id
    assert run.data.params["seg"] == "attunet" and run.data.params["seg_opts.attunet.width"] == "4"
    ml = {
        (key, m.step): m.value
        for key in run.data.metrics
        for m in client.get_metric_history(run.info.run_id, key)
    }
    assert ml[("test/dice_lesion", 0)] == pytest.approx(result.summary["dice_lesion"])
    assert ml[("selection/epoch", 0)] == record["selection"]["epoch"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "per_case.csv", "checkpoint.pt", "examples.png"} <= artifacts
    assert (out / "mlflow" / "artifacts").is_dir()
    assert run.info.artifact_uri.startswith((out / "mlflow" / "artifacts").as_uri())
    for key, value in expected.items():
        assert tb[key] == pytest.approx(value, rel=1e-6), key  # TensorBoard stores float32
        assert ml[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize(("name", "module"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_tracker_without_its_library_names_the_extra(tmp_path, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    for loaded in [m for m in sys.modules if m.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, loaded, None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(errors.ConfigError, match=rf'pip install "benchbox\[{name}\]"'):
        runner.prepare(cfg.resolve(None, None, {**TINY, "out": str(tmp_path), "trackers": [name]}))
    assert not list(tmp_path.glob("runs/*"))


@pytest.mark.integration
def test_runs_of_a_sweep_create_the_default_mlflow_store_at_once(tmp_path, no_mlflow_env):
    """Several processes that start a run on one new store at once all log their run
    (MLflow's own table creation fails when two processes create one database)."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from benchbox import RunInfo
        from benchbox_plugins.trackers.mlflow_tracker import MlflowTracker

        run_dir = Path(sys.argv[1]) / "runs" / sys.argv[2]
        run_dir.mkdir(parents=True)
        tracker = MlflowTracker()
        tracker.run_started(RunInfo(sys.argv[2], run_dir, {"seed": 0}, "h"))
        tracker.run_finished(RunInfo(sys.argv[2], run_dir, {}, "h"), "completed", {}, {}, {}, None)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), f"run{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not any("INFO" in text for text in outputs), outputs  # MLflow's set-up lines
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("benchbox").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run0", "run1"]
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.integration
def test_an_explicit_mlflow_file_store_works_or_stops_before_training(
    tmp_path, monkeypatch, no_mlflow_env
):
    """MLflow 3 refuses its file store: one line naming the fix, before any run folder;
    an MLflow that still writes file stores logs the run there."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    config = cfg.resolve(None, None, {**TINY, "out": str(tmp_path), "trackers": ["mlflow"]})
    try:
        prepared = runner.prepare(config)
    except errors.ConfigError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1
        assert f"MLFLOW_TRACKING_URI={store} is a file store" in message
        assert "sqlite:///" in message and "MLFLOW_ALLOW_FILE_STORE=true" in message
        assert not (tmp_path / "runs").exists()
    else:
        result = runner.execute(prepared)
        client = MlflowClient(tracking_uri=store)
        [run] = client.search_runs([client.get_experiment_by_name("benchbox").experiment_id])
        assert run.info.run_name == result.run_id and run.info.status == "FINISHED"


@pytest.mark.integration
def test_an_unreachable_mlflow_server_stops_the_run_at_once_in_one_line(
    tmp_path, monkeypatch, capsys, no_mlflow_env
):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")  # discard: refused
    start = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["run", "--tracker", "mlflow", "--out", str(tmp_path), *TINY_ARGS])
    assert time.monotonic() - start < 20  # was over 4 minutes of silent retries
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:9/" in err and "refused" in err.lower(), err
    assert not (tmp_path / "runs").exists()


def test_an_mlflow_server_that_does_not_answer_times_out(tmp_path, monkeypatch, no_mlflow_env):
    pytest.importorskip("mlflow")
    tracker_module = importlib.import_module("benchbox_plugins.trackers.mlflow_tracker")
    monkeypatch.setattr(tracker_module, "PROBE_TIMEOUT", 1)
    with socket.socket() as server:  # accepts connections (backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        start = time.monotonic()
        config = cfg.resolve(None, None, {**TINY, "out": str(tmp_path), "trackers": ["mlflow"]})
        with pytest.raises(errors.ConfigError, match=r"no answer within 1 s") as info:
            runner.prepare(config)
        assert time.monotonic() - start < 15
    assert f"MLFLOW_TRACKING_URI={uri}" in str(info.value)
    assert not (tmp_path / "runs").exists()
