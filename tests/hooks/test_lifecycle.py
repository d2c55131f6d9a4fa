"""Run-lifecycle hooks: called through pluggy, observers isolated, trackers per run."""

from __future__ import annotations

import json
import types

import pytest
import torch

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.engine import runner
from benchbox.hooks.lifecycle import Observers, flat_params
from benchbox.hooks.manager import create_registry, make_plugin_manager, use_registry
from benchbox.hookspecs import RunInfo
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(epochs=2)


class Recorder:
    """An observer that records every lifecycle call."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def run_started(self, run):
        self.calls.append(("run_started", run.run_id))

    @hookimpl
    def epoch_ended(self, run, stage, epoch, train_loss, val_metrics):
        self.calls.append(("epoch_ended", stage, epoch, train_loss, dict(val_metrics)))

    @hookimpl
    def run_finished(self, run, status, summary, record, files, error):
        self.calls.append(("run_finished", status, dict(summary), sorted(files), error))


class Broken:
    """An observer whose epoch hook raises."""

    __name__ = "broken-observer"

    def __init__(self):
        self.finished = 0

    @hookimpl
    def epoch_ended(self, run, stage, epoch, train_loss, val_metrics):
        raise RuntimeError("disk full")

    @hookimpl
    def run_finished(self, run, status, summary, record, files, error):
        self.finished += 1


def _info(tmp_path):
    return RunInfo("r1", tmp_path, {"seed": 0}, "abc")


def test_a_failing_observer_is_warned_once_and_disabled(tmp_path):
    pm = make_plugin_manager()
    order = []

    class First:
        @hookimpl(tryfirst=True)
        def run_started(self, run):
            order.append("first")

    class Last:
        @hookimpl(trylast=True)
        def run_started(self, run):
            order.append("last")

    pm.register(Last(), name="last")
    pm.register(First(), name="first")
    broken, recorder, warned = Broken(), Recorder(), []
    pm.register(broken, name="broken-observer")
    with Observers(pm, {"recorder": recorder}, warn=warned.append) as observers:
        observers.call("run_started", run=_info(tmp_path))
        for epoch in (1, 2):
            observers.call(
                "epoch_ended",
                run=_info(tmp_path),
                stage="joint",
                epoch=epoch,
                train_loss=0.5,
                val_metrics={},
            )
        observers.call(
            "run_finished",
            run=_info(tmp_path),
            status="completed",
            summary={},
            record={},
            files={},
            error=None,
        )
    assert order == ["first", "last"]  # pluggy's ordering holds
    assert len(warned) == 1
    assert "observer 'broken-observer' failed in epoch_ended (RuntimeError: disk full)" in warned[0]
    assert broken.finished == 0  # disabled for the rest of the run
    assert [c[0] for c in recorder.calls] == [
        "run_started",
        "epoch_ended",
        "epoch_ended",
        "run_finished",
    ]
    assert not pm.has_plugin("tracker recorder")  # a tracker lives for one run only
    # Outside a run the guard calls straight through.
    with pytest.raises(RuntimeError, match="disk full"):
        pm.hook.epoch_ended(
            run=_info(tmp_path), stage="joint", epoch=1, train_loss=0.0, val_metrics={}
        )


def test_flat_params():
    assert flat_params({"a": 1, "t": {"w": 2, "n": {"x": None}}, "l": ["x", "y"]}) == {
        "a": 1,
        "t.w": 2,
        "l": "x,y",
    }


@pytest.mark.integration
def test_a_run_is_observed_from_start_to_finish(tmp_path):
    recorder, broken = Recorder(), Broken()
    registry = create_registry([broken])
    registry.plugin_manager.register(recorder, name="recorder")
    logged = []
    with use_registry(registry):
        result = runner.run(
            cfg.resolve(None, None, {**TINY, "out": str(tmp_path)}), log=logged.append
        )
    calls = recorder.calls
    assert calls[0] == ("run_started", result.run_id)
    epochs = [c for c in calls if c[0] == "epoch_ended"]
    curve = json.loads(result.files["metrics"].read_text())["curve"]
    assert [(c[1], c[2], c[3], c[4]) for c in epochs] == [
        (e["stage"], e["epoch"], e["train_loss"], e["val"]) for e in curve
    ]
    assert [(c[1], c[2], bool(c[4])) for c in epochs] == [
        ("fusion", 1, False),
        ("joint", 1, True),
        ("joint", 2, True),
    ]
    assert "dice" in epochs[-1][4] and "hd95_lesion" in epochs[-1][4]
    status, summary, files, error = calls[-1][1:]
    assert status == "completed" and error is None and summary == result.summary
    assert {"checkpoint", "metrics", "per_case", "config"} <= set(files)
    # The broken observer cost nothing but a warning, and the record says so.
    assert sum("observer 'broken-observer' failed" in m for m in logged) == 1
    assert "broken-observer" in result.record["observer_failures"]


class NaNLoss(torch.nn.Module):
    def forward(self, logits, target):
        return logits.mean() * float("nan")


@pytest.mark.integration
def test_a_failed_run_is_reported_finished_with_its_error(tmp_path):
    recorder = Recorder()

    @hookimpl
    def register_losses(register):
        register("nan", NaNLoss, task="segmentation")

    plugin = types.SimpleNamespace(__name__="nan-plugin", register_losses=register_losses)
    registry = create_registry([plugin])
    registry.plugin_manager.register(recorder, name="recorder")
    with use_registry(registry), pytest.raises(errors.TrainingDivergedError):
        runner.run(cfg.resolve(None, None, {**TINY, "out": str(tmp_path), "loss": "nan"}))
    status, summary, files, error = recorder.calls[-1][1:]
    assert status == "failed" and "became nan" in error and summary == {}
    assert files == ["config", "environment"]


@pytest.mark.integration
def test_unknown_tracker_fails_before_the_run(tmp_path):
    with pytest.raises(errors.UnknownTrackerError, match="did you mean 'mlflow'"):
        runner.prepare(
            cfg.resolve(None, None, {**TINY, "out": str(tmp_path), "trackers": ["mlfow"]})
        )
    assert not list(tmp_path.glob("runs/*"))
