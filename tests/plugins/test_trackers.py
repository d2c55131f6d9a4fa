"""The built-in trackers against the real libraries: TensorBoard and MLflow."""

from __future__ import annotations

import json
import sys

import pytest

from benchbox import config as cfg
from benchbox import errors
from benchbox.engine import runner
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(epochs=2)


def test_tensorboard_and_mlflow_show_the_numbers_of_the_record(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # A database store puts artifacts in ./mlruns of the working folder: keep it in tmp.
    monkeypatch.chdir(tmp_path)
    config = cfg.resolve(
        None, None, {**TINY, "out": str(tmp_path), "trackers": ["tensorboard", "mlflow"]}
    )
    result = runner.run(config)
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

    client = MlflowClient(tracking_uri=uri)
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
