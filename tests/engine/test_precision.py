"""Precision and robustness: fp16 skipped steps, determinism flags, the config hash, and
the checkpoint written before the test split is scored. (SSIM under autocast:
tests/metrics/test_ssim_autocast.py.) One torch thread, pinned here."""

from __future__ import annotations

import json

import pytest
import torch

from benchbox import config as cfg
from benchbox import errors
from benchbox.engine import runner
from benchbox.engine.device import AmpPlan, seed_everything
from benchbox.engine.train import train_stage
from benchbox.records import rundir
from benchbox.testing import tiny_run_settings

pytestmark = pytest.mark.usefixtures("pinned_threads")


def _fp16_stage(losses, epochs=1):
    model = torch.nn.Linear(1, 1)
    values = iter(losses)

    def step(batch):
        return model(batch["a"]).mean() * 0 + next(values)

    loader = [{"a": torch.ones(2, 1)} for _ in range(len(losses) // epochs)]
    plan = AmpPlan("fp16", "fp16", "cpu")
    return model, train_stage(
        "joint",
        model.parameters(),
        step,
        loader,
        epochs=epochs,
        lr=0.1,
        weight_decay=0,
        warmup_steps=0,
        amp=plan,
    )


def test_fp16_skips_a_few_non_finite_steps_and_stops_on_a_run_of_them():
    inf, nan = float("inf"), float("nan")
    _, stats = _fp16_stage([1.0, inf, nan, 2.0, inf, 3.0, nan, nan, nan, nan, 4.0])
    assert stats.steps == 11
    assert stats.epoch_losses == [pytest.approx((1 + 2 + 3 + 4) / 4)]  # skipped steps left out
    with pytest.raises(errors.TrainingDivergedError, match="not finite for 5 steps in a row"):
        _fp16_stage([1.0, nan, inf, nan, nan, nan, 1.0])


def test_deterministic_warns_only_on_cuda():
    try:
        seed_everything(0, deterministic=True, cuda=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        seed_everything(0, deterministic=True, cuda=False)
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_config_hash_ignores_the_dataset_folder_and_follows_the_precision_used():
    here = cfg.resolve(None, None, {"dataset": "pairs:/data/aanlib"})
    there = cfg.resolve(None, None, {"dataset": "pairs:/mnt/copy/aanlib"})
    other = cfg.resolve(None, None, {"dataset": "nifti:/data/aanlib"})
    assert here.hash() == there.hash() != other.hash()
    # ... but two datasets of one reader are two experiments
    pet = cfg.resolve(None, None, {"dataset": "pairs:/data/aanlib/PET-MRI/"})
    spect = cfg.resolve(None, None, {"dataset": "pairs:/data/aanlib/SPECT-MRI"})
    assert pet.hash() != spect.hash()
    assert pet.hash() == cfg.resolve(None, None, {"dataset": "pairs:PET-MRI"}).hash()
    auto = cfg.resolve(None, None, {"amp": "auto"})
    off = cfg.resolve(None, None, {"amp": "off"})
    assert auto.hash("off") == off.hash("off") != auto.hash("bf16")


@pytest.mark.integration
def test_a_failure_after_training_keeps_the_checkpoint(tmp_path, monkeypatch):
    from benchbox.engine import inference

    real = inference.score_split

    def failing(dataset, predictor, *, split="test", **kwargs):
        if split == "test":
            raise RuntimeError("metric exploded")
        return real(dataset, predictor, split=split, **kwargs)

    monkeypatch.setattr(inference, "score_split", failing)
    overrides = tiny_run_settings(seg="none", out=str(tmp_path))
    with pytest.raises(RuntimeError, match="metric exploded"):
        runner.run(cfg.resolve(None, None, overrides))
    [run_dir] = (tmp_path / "runs").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "metric exploded" in status["error"]
    assert "the selected checkpoint is" in status["error"]
    assert "fusion" in rundir.load_checkpoint(run_dir / "checkpoint.pt")
