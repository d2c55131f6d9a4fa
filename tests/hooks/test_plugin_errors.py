"""A plugin's own bug is reported as that plugin's, not as the user's; checks run early."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.cli import main
from benchbox.engine import runner
from benchbox.hooks.manager import DEBUG_ENV, create_registry, use_registry
from benchbox.hooks.registry import Registry
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(
    data_opts={"synthetic": {"n_train": 4, "n_val": 2, "n_test": 2}}, fusion_opts={}
)


def tiny(out: Path, **overrides: object) -> cfg.RunConfig:
    return cfg.resolve(None, None, {**TINY, "out": str(out), **overrides})


def crash_in_init(width: int = 4) -> nn.Module:
    """A fusion model whose constructor has a bug."""
    return nn.Conv2d(2, 1, 1) if width / 0 else nn.Identity()


def refuses_value(width: int = 4) -> nn.Module:
    """A fusion model that refuses a parameter value (the user's mistake)."""
    raise ValueError(f"width must be even, got {width}")


class CrashInForward(nn.Module):
    """A fusion model whose forward has a bug."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.w * (a.flatten(1) @ b.flatten(1))  # (B, HW) @ (B, HW): torch raises


class ThreeChannels(nn.Module):
    """A fusion model returning RGB instead of one fused channel."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.w * torch.cat([a, b, a], dim=1)).clamp(0, 1)


class CrashingLoss(nn.Module):
    """A segmentation loss that fails on its first real batch."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise KeyError("lookup table entry missing")


@hookimpl
def register_fusions(register):
    register("crash-init", crash_in_init)
    register("refuses", refuses_value)
    register("crash-forward", CrashInForward)
    register("rgb", ThreeChannels)


@hookimpl
def register_losses(register):
    register("crash-loss", CrashingLoss, task="segmentation")


@pytest.fixture
def buggy() -> Iterator[Registry]:
    """The installed plugins plus the buggy test plugin, as the process-wide registry."""
    plugin = types.SimpleNamespace(
        __name__="buggy-plugin", register_fusions=register_fusions, register_losses=register_losses
    )
    registry = create_registry([plugin])
    with use_registry(registry):
        yield registry


def test_constructor_bug_names_the_plugin_and_the_exception(buggy, tmp_path):
    with pytest.raises(errors.PluginBugError) as info:
        runner.prepare(tiny(tmp_path, fusion="crash-init", seg="none"), buggy)
    message = str(info.value)
    assert message.startswith(
        "fusion 'crash-init' of plugin buggy-plugin failed while being built: "
        "ZeroDivisionError: division by zero ("
    )
    assert "test_plugin_errors.py:" in message and "this is a bug in the plugin" in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # a value the plugin refuses is the user's configuration error
    with pytest.raises(errors.ConfigError, match="fusion 'refuses': width must be even, got 4"):
        runner.prepare(tiny(tmp_path, fusion="refuses", seg="none"), buggy)


def test_forward_bug_is_caught_on_the_probe_before_training(buggy, tmp_path):
    with pytest.raises(errors.PluginBugError) as info:
        runner.prepare(tiny(tmp_path, fusion="crash-forward", seg="none"), buggy)
    message = str(info.value)
    assert "fusion 'crash-forward' of plugin buggy-plugin failed on a probe input: " in message
    assert "RuntimeError" in message and "this is a bug in the plugin" in message
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.integration
def test_bug_during_training_is_the_plugins_and_marks_the_run_failed(buggy, tmp_path):
    with pytest.raises(errors.PluginBugError) as info:
        runner.run(tiny(tmp_path, loss="crash-loss", fusion="none"), registry=buggy)
    message = str(info.value)
    assert message.startswith(
        "loss 'crash-loss' of plugin buggy-plugin failed while training: "
        "KeyError: 'lookup table entry missing' ("
    )
    [run_dir] = (tmp_path / "runs").iterdir()
    assert "crash-loss" in (run_dir / "status.json").read_text()


def test_fusion_returning_three_channels_is_caught_at_the_contract_check(
    buggy, tmp_path, monkeypatch
):
    from benchbox_plugins.segmenters import attunet

    calls: list[tuple[int, ...]] = []
    original = attunet.UNet.forward

    def spy(self, x):
        calls.append(tuple(x.shape))
        return original(self, x)

    monkeypatch.setattr(attunet.UNet, "forward", spy)
    with pytest.raises(errors.PluginBugError) as info:
        runner.prepare(tiny(tmp_path, fusion="rgb", seg="attunet"), buggy)
    assert str(info.value) == (
        "fusion 'rgb' of plugin buggy-plugin returned (1, 3, 32, 32) for a (1, 1, 32, 32) "
        "input; the fusion contract is one fused image (B, 1, H, W) from two sources "
        "(benchbox/hookspecs.py)"
    )
    assert calls == []  # the segmenter never saw the 3-channel image


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"loss": "dicee"}, "unknown loss 'dicee'; did you mean 'dice'"),
        ({"fusion_loss": "fusoin"}, "unknown loss 'fusoin'; did you mean 'fusion'"),
        ({"loss": "ssim"}, "--loss 'ssim' is a fusion loss"),
        ({"loss_opts": {"smoth": 1}}, "loss 'hybrid' has no parameter 'smoth'"),
    ],
)
def test_loss_names_and_parameters_are_checked_before_the_dataset_is_built(
    tmp_path, overrides, error
):
    built: list[dict[str, object]] = []

    @hookimpl
    def register_datasets(register):
        from benchbox.data.synthetic import SyntheticDataset

        def counted(**kwargs: object) -> object:
            built.append(kwargs)
            return SyntheticDataset(**kwargs)  # type: ignore[arg-type]

        register("counted", counted)

    plugin = types.SimpleNamespace(__name__="counting", register_datasets=register_datasets)
    registry = create_registry([plugin])
    with pytest.raises(errors.BenchboxError, match=error):
        runner.prepare(tiny(tmp_path, dataset="counted", **overrides), registry)
    assert built == []


def test_cli_reports_a_plugin_bug_in_one_line_and_debug_shows_the_traceback(
    buggy, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(DEBUG_ENV, "0")  # restored (unset) after the test, even if --debug sets it
    args = ["run", "--fusion", "crash-init", "--seg", "none", "--image-size", "32"]
    args += ["--data-opt", "n_train=4", "--data-opt", "n_test=2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: fusion 'crash-init' of plugin buggy-plugin failed")
    assert "Traceback" not in err

    with pytest.raises(SystemExit):
        main(["--debug", *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any("width / 0" in line for line in lines)  # the plugin's own source line
    assert lines[-1].startswith("error: fusion 'crash-init' of plugin buggy-plugin failed")


@pytest.mark.integration
def test_a_failing_metric_is_left_out_with_a_warning_and_the_run_completes(tmp_path):
    import json

    import pandas as pd

    calls = {"n": 0}

    def flaky(fused, a, b):
        """Fails from its second call on: the first case's column must go too."""
        calls["n"] += 1
        if calls["n"] >= 2:
            raise ZeroDivisionError("metric bug")
        return float(fused.mean())

    def crashing_seg(pred, ref, spacing):
        """Always fails."""
        raise AttributeError("'NoneType' object has no attribute 'sum'")

    @hookimpl
    def register_metrics(register):
        register("flaky", flaky, task="fusion", higher_is_better=True)
        register("crashing-seg", crashing_seg, task="segmentation", higher_is_better=True)

    registry = create_registry(
        [types.SimpleNamespace(__name__="metric-plugin", register_metrics=register_metrics)]
    )
    with use_registry(registry), pytest.warns(errors.PluginWarning) as caught:
        result = runner.run(tiny(tmp_path), registry=registry)
    messages = sorted({str(w.message) for w in caught if w.category is errors.PluginWarning})
    assert messages[0].startswith(
        "left out metric 'crashing-seg' of plugin metric-plugin: it raised AttributeError: "
    )
    assert messages[1].startswith(
        "left out metric 'flaky' of plugin metric-plugin: it raised ZeroDivisionError: metric bug ("
    )
    assert calls["n"] >= 2
    assert not any(k.startswith(("flaky", "crashing")) for k in result.summary)
    assert "dice_lesion" in result.summary and "ssim_mean" in result.summary
    per_case = pd.read_csv(result.run_dir / "per_case.csv")
    assert not any(c.startswith(("flaky", "crashing")) for c in per_case.columns)
    assert len(per_case) == 2 and per_case.notna().all().all()
    notes = json.loads((result.run_dir / "metrics.json").read_text())["notes"]
    assert sorted({n for n in notes if "left out metric" in n}) == messages
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["status"] == "completed"


def test_a_metric_bug_outside_a_run_is_one_plugin_error():
    import numpy as np

    from benchbox.metrics.suite import score_fusion_case

    def broken(fused, a, b):
        """Broken."""
        return {}["missing"]

    @hookimpl
    def register_metrics(register):
        register("broken", broken, task="fusion", higher_is_better=True)

    registry = create_registry(
        [types.SimpleNamespace(__name__="metric-plugin", register_metrics=register_metrics)],
        entry_points=False,
    )
    image = np.full((8, 8), 0.5)
    with pytest.raises(
        errors.PluginBugError,
        match=r"metric 'broken' of plugin metric-plugin "
        r"failed while scoring: KeyError: 'missing'",
    ):
        score_fusion_case(image, image, image, registry.list("metric"))
