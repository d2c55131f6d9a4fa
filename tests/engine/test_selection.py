"""Model selection on validation: objectives, the selector, and the runner's protocol."""

from __future__ import annotations

import json
import types

import pytest
import torch

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.data.base import BenchDataset
from benchbox.engine import runner
from benchbox.engine.device import resolve_amp
from benchbox.engine.inference import Predictor
from benchbox.engine.selection import Objective, Selector, resolve_objective, val_columns, validate
from benchbox.hooks.manager import create_registry, get_registry, use_registry
from benchbox.records import leaderboard, rundir
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(examples=0)


def tiny(out, **overrides) -> cfg.RunConfig:
    return cfg.resolve(None, None, {**TINY, "out": str(out), **overrides})


# -- objectives -------------------------------------------------------------------------
def test_objective_defaults_and_directions():
    reg = get_registry()
    regions = {"lesion": (1,)}
    assert resolve_objective("auto", True, reg, regions) == Objective("dice", True)
    assert resolve_objective("auto", False, reg, {}) == Objective("loss", False)
    assert resolve_objective("hd95_lesion", True, reg, regions) == Objective("hd95_lesion", False)
    assert resolve_objective("hd95", True, reg, regions).higher_is_better is False
    assert resolve_objective("ssim_mean", False, reg, {}) == Objective("ssim_mean", True)


@pytest.mark.parametrize(
    ("select", "has_seg", "match"),
    [
        ("dcie", True, r"--select 'dcie' is not a validation metric.*dice.*per region"),
        ("loss", True, "segmentation run"),
        ("dice", False, "fusion run"),
    ],
)
def test_objective_rejects_names_of_no_column(select, has_seg, match):
    with pytest.raises(errors.ConfigError, match=match):
        resolve_objective(select, has_seg, get_registry(), {"lesion": (1,)} if has_seg else {})


@pytest.mark.integration
def test_a_misspelt_select_fails_before_the_dataset_is_built(tmp_path):
    # The folder does not exist: had the dataset been built first, that would be the error.
    config = tiny(tmp_path, dataset="pairs:/no/such/folder", seg="none", select="ssmi")
    with pytest.raises(errors.ConfigError, match="--select 'ssmi'"):
        runner.run(config)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_val_columns_average_each_metric_over_regions():
    summary = {
        "n_cases": 3.0,
        "dice_core": 0.5,
        "dice_core_std": 0.1,
        "dice_whole": 0.7,
        "hd95_core": 1.0,
        "hd95_whole": 3.0,
        "n_ref_empty_core": 1.0,
    }
    out = val_columns(summary, {"core": (1,), "whole": (1, 2)})
    assert out == pytest.approx(
        {
            "dice_core": 0.5,
            "dice_whole": 0.7,
            "hd95_core": 1.0,
            "hd95_whole": 3.0,
            "dice": 0.6,
            "hd95": 2.0,
        }
    )


def test_selector_keeps_the_best_weights_and_counts_patience():
    model = torch.nn.Linear(2, 1)
    sel = Selector(Objective("hd95", higher_is_better=False), patience=2)
    weights = {}
    for epoch, value in enumerate([5.0, 3.0, float("nan"), 4.0, 3.0], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        weights[epoch] = model.weight.clone()
        sel.offer(epoch, {"hd95": value}, {"segmenter": model})
        if epoch == 4:
            assert sel.should_stop  # NaN and 4.0: two validations without improvement
    assert (sel.best_epoch, sel.best_value) == (2, 3.0)  # a tie does not replace the best
    sel.restore({"segmenter": model})
    assert torch.equal(model.weight, weights[2])
    with pytest.raises(errors.ConfigError, match="no such validation column; columns: dice"):
        sel.offer(6, {"dice": 1.0}, {"segmenter": model})


# -- the runner -------------------------------------------------------------------------
def _probe_plugin(values):
    """A fusion metric that returns ``values`` one validation after another (2 cases each),
    so a test decides which epoch is the best."""
    calls = []

    def probe(fused, a, b):
        calls.append(1)
        i = (len(calls) - 1) // 2
        return values[i] if i < len(values) else 0.0

    @hookimpl
    def register_metrics(register):
        register("probe", probe, task="fusion", higher_is_better=True)

    return types.SimpleNamespace(__name__="probe-plugin", register_metrics=register_metrics)


@pytest.mark.integration
def test_the_selected_epoch_is_checkpointed_and_tested(tmp_path):
    registry = create_registry([_probe_plugin([0.9, 0.1, 0.2])])
    with use_registry(registry):
        result = runner.run(tiny(tmp_path, seg="none", epochs=3, select="probe"))
    metrics = json.loads(result.files["metrics"].read_text())
    sel = metrics["selection"]
    assert (sel["metric"], sel["mode"], sel["epoch"], sel["epochs_run"]) == ("probe", "max", 1, 3)
    assert sel["value"] == pytest.approx(0.9) and not sel["stopped_early"]
    curve = metrics["curve"]
    assert [(e["stage"], e["epoch"]) for e in curve] == [("fusion", i) for i in (1, 2, 3)]
    assert [e["val"]["probe"] for e in curve] == pytest.approx([0.9, 0.1, 0.2])
    assert all(e["val"]["loss"] > 0 and "ssim_mean" in e["val"] for e in curve)
    row = leaderboard.read(result.leaderboard).iloc[0]
    assert (row["selected_epoch"], row["select_metric"]) == (1, "val_probe")

    # The checkpoint holds epoch 1's weights: validating it again gives epoch 1's loss.
    p = runner.prepare(tiny(tmp_path, seg="none", epochs=3))
    p.models.fusion.load_state_dict(rundir.load_checkpoint(result.files["checkpoint"])["fusion"])
    p.models.fusion.eval()
    again = validate(
        p.dataset,
        Predictor(p.models.fusion, None, p.device, resolve_amp("off", p.device)),
        fusion_loss=p.models.fusion_loss,
        batch_size=8,
    )
    assert again["loss"] == pytest.approx(curve[0]["val"]["loss"], rel=1e-5)
    assert again["loss"] != pytest.approx(curve[2]["val"]["loss"], rel=1e-5)


@pytest.mark.integration
def test_patience_stops_the_stage_and_val_every_skips_epochs(tmp_path):
    registry = create_registry([_probe_plugin([0.9, 0.1, 0.2, 0.3])])
    with use_registry(registry):
        result = runner.run(tiny(tmp_path, seg="none", epochs=6, select="probe", patience=1))
    sel = result.record["selection"]
    assert (sel["epoch"], sel["epochs_run"], sel["stopped_early"]) == (1, 2, True)
    assert result.record["stages"][0]["epochs"] == 2

    result = runner.run(tiny(tmp_path, seg="none", epochs=3, val_every=2))
    assert [bool(e["val"]) for e in result.record["curve"]] == [False, True, True]


class NoVal(BenchDataset):
    """Pairs with train and test splits only."""

    name = "noval"

    @property
    def splits(self):
        return ("train", "test")

    def split(self, name):
        self.check_split(name)
        g = torch.Generator().manual_seed(len(name))
        return [
            {
                "a": torch.rand(1, 32, 32, generator=g),
                "b": torch.rand(1, 32, 32, generator=g),
                "case_id": f"{name}-{i}",
                "spacing": torch.ones(2, dtype=torch.float64),
            }
            for i in range(4)
        ]


@pytest.mark.integration
def test_no_val_split_keeps_the_last_epoch_and_says_so(tmp_path):
    @hookimpl
    def register_datasets(register):
        register("noval", NoVal)

    plugin = types.SimpleNamespace(__name__="noval-plugin", register_datasets=register_datasets)
    registry = create_registry([plugin])
    result = runner.run(tiny(tmp_path, dataset="noval", seg="none", epochs=2), registry=registry)
    sel = result.record["selection"]
    assert sel["metric"] is None and sel["epoch"] == 2
    assert "has no val split: the last epoch is kept" in sel["note"]
    assert sel["note"] in result.record["notes"]
    row = leaderboard.read(result.leaderboard).iloc[0]
    assert row["select_metric"] == "last epoch" and row["selected_epoch"] == 2


@pytest.mark.integration
def test_postprocess_auto_is_decided_on_val_and_recorded(tmp_path):
    logged: list[str] = []
    result = runner.run(tiny(tmp_path, epochs=1, postprocess="auto"), log=logged.append)
    record = result.record["postprocess"]
    assert (record["requested"], record["metric"], record["mode"]) == ("auto", "dice", "max")
    none, largest = record["val"]["none"], record["val"]["largest"]
    # The raw value is the selected epoch's validation score, computed again.
    assert none == pytest.approx(result.record["selection"]["value"])
    assert record["applied"] == ("largest" if largest > none else "none")
    assert any(
        line.startswith(f"post-processing: {record['applied']} (val dice") for line in logged
    )
    row = leaderboard.read(result.leaderboard).iloc[0]
    assert row["postprocess"] == record["applied"]


@pytest.mark.integration
def test_postprocess_auto_without_val_split_applies_none_and_says_so(tmp_path):
    logged: list[str] = []
    result = runner.run(
        tiny(tmp_path, epochs=1, postprocess="auto", val_every=0), log=logged.append
    )
    record = result.record["postprocess"]
    assert record["applied"] == "none" and "no validation split" in record["note"]
    assert record["note"] in logged


@pytest.mark.integration
def test_tta_scores_the_final_val_and_the_test_split_but_not_selection(tmp_path, request):
    import pandas as pd

    from benchbox.engine.inference import score_split

    plain = runner.run(tiny(tmp_path / "plain", epochs=2, postprocess="auto"))
    spied = request.getfixturevalue("tta_modes")  # spying from here on
    flip = runner.run(tiny(tmp_path / "flip", epochs=2, postprocess="auto", tta="flip"))
    modes = spied.copy()  # the flip run's passes, not the re-scoring's below
    # Every epoch's validation is single-pass; the final validation (raw and largest
    # component) and the test split that follow are mirrored.
    first = modes.index("flip")
    assert set(modes[:first]) == {"none"} and set(modes[first:]) == {"flip"}
    assert first >= 2 and len(modes) - first >= 3
    # Selection scores single passes: the same curve and epoch as without --tta.
    assert [e["val"] for e in flip.record["curve"]] == [e["val"] for e in plain.record["curve"]]
    assert flip.record["selection"]["epoch"] == plain.record["selection"]["epoch"]
    assert (flip.record["tta"], plain.record["tta"]) == ("flip", "none")
    rows = [leaderboard.read(r.leaderboard).iloc[0] for r in (plain, flip)]
    assert [r["tta"] for r in rows] == ["none", "flip"]
    assert rows[0]["config_hash"] != rows[1]["config_hash"]

    # The selected weights scored again with 4 mirrored passes give the run's test
    # cases and its final validation value.
    p = runner.prepare(tiny(tmp_path / "again", epochs=2))
    weights = rundir.load_checkpoint(flip.files["checkpoint"])
    p.models.fusion.load_state_dict(weights["fusion"])
    p.models.segmenter.load_state_dict(weights["segmenter"])
    p.models.fusion.eval()
    p.models.segmenter.eval()
    predictor = Predictor(p.models.fusion, p.models.segmenter, p.device, p.amp, tta="flip")
    test = score_split(p.dataset, predictor, split="test", examples=0)
    recorded = pd.read_csv(flip.files["per_case"])
    pd.testing.assert_frame_equal(
        recorded[test.per_case.columns], test.per_case, check_dtype=False, rtol=1e-6
    )
    c = p.config
    val = validate(p.dataset, predictor, batch_size=c.eval_batch_size, max_cases=c.max_val_cases)
    assert flip.record["postprocess"]["val"]["none"] == pytest.approx(val["dice"])


class BlownStatistics(torch.nn.Module):
    """A segmenter whose batch-norm running statistics blow up while its training loss
    stays finite (training normalises with the batch's own statistics): its val outputs
    are NaN, as after too high a learning rate."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))

    def train(self, mode: bool = True) -> BlownStatistics:
        if not mode:  # what the updates did to the statistics shows at evaluation
            with torch.no_grad():
                self.norm.running_var.fill_(float("nan"))
        return super().train(mode)


@pytest.mark.integration
def test_a_model_with_nan_val_outputs_stops_the_run_naming_stage_lr_and_culprit(tmp_path):
    # Before: scored at validation as Dice 0 "(best)", then the run failed at the test
    # split on "fused contains NaN or infinite values", or completed with a row.
    @hookimpl
    def register_segmenters(register):
        register("blown", BlownStatistics)

    plugin = types.SimpleNamespace(__name__="blown-plugin", register_segmenters=register_segmenters)
    logged: list[str] = []
    with use_registry(create_registry([plugin])):
        config = tiny(tmp_path, fusion="none", seg="blown", seg_opts={}, epochs=2, lr=0.5)
        with pytest.raises(errors.TrainingDivergedError) as info:
            runner.run(config, log=logged.append)
    message = str(info.value)
    head, tail = message.split(" (train loss ", 1)
    assert head == "the segmentation stage diverged: after epoch 1"
    assert tail.split(") ", 1)[1] == (
        "the model's segmenter output on the val split holds NaN or infinite values "
        "('norm.running_var' (BatchNorm2d) in BlownStatistics is not finite); lower the "
        "learning rate (--lr 0.5); the run is marked failed"
    )
    status = json.loads(next((tmp_path / "runs").iterdir()).joinpath("status.json").read_text())
    assert status["status"] == "failed" and status["error"].startswith(message)
    assert not any("val dice" in line for line in logged)
    assert not list(tmp_path.glob("leaderboards/*.csv"))
