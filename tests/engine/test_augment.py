"""Augmentation settings and where the runner applies them (training batches only)."""

from __future__ import annotations

import types

import pytest

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.config import settings
from benchbox.engine import runner
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.testing import tiny_run_settings


def test_augment_settings_from_a_table_a_list_and_the_command_line(tmp_path):
    preset = tmp_path / "aug.toml"
    preset.write_text("[augment]\nflip = {}\naffine = { degrees = 10 }\n")
    c = cfg.resolve(None, preset)
    assert c.augment == ["flip", "affine"] and c.augment_opts == {"affine": {"degrees": 10}}
    opts = settings.parse_augment_options(["affine.degrees=15", "gamma.gamma=[0.8, 1.2]"])
    assert opts == {"affine": {"degrees": 15}, "gamma": {"gamma": [0.8, 1.2]}}
    c = cfg.resolve(None, preset, {"augment": "gamma,affine", "augment_opts": opts})
    assert c.augment == ["gamma", "affine"]
    assert c.augment_opts == {"affine": {"degrees": 15}, "gamma": {"gamma": [0.8, 1.2]}}
    c = cfg.resolve(None, preset, {"augment": "none"})
    assert c.augment == [] and c.augment_opts == {}  # options of disabled transforms go
    assert cfg.resolve(None, preset).hash() != cfg.resolve(None, preset, {"augment": "none"}).hash()
    with pytest.raises(errors.ConfigError, match=r"TRANSFORM.OPTION=VALUE"):
        settings.parse_augment_options(["degrees=15"])
    with pytest.raises(errors.ConfigError, match="augment must be a list"):
        cfg.resolve(None, None, {"augment": 3})


@pytest.mark.integration
def test_only_training_batches_are_augmented_on_the_device(tmp_path):
    seen = []

    def spy(p: float = 1.0):
        def transform(batch, generator):
            seen.append((sorted(batch), batch["a"].device.type, generator.device.type))
            return batch

        return transform

    @hookimpl
    def register_transforms(register):
        register("spy", spy, family="intensity")

    plugin = types.SimpleNamespace(__name__="spy-plugin", register_transforms=register_transforms)
    registry = create_registry([plugin])
    overrides = tiny_run_settings(epochs=2, examples=0, augment=["flip", "spy"], out=str(tmp_path))
    with use_registry(registry):
        result = runner.run(cfg.resolve(None, None, overrides))
    steps = sum(s["steps"] for s in result.record["stages"])
    assert steps == 2 + 4  # fusion: 1 epoch x 2 batches; joint: 2 x 2
    assert len(seen) == steps  # validation and test batches are never augmented
    assert seen[0] == (["a", "b"], "cpu", "cpu")  # fusion pre-training: sources only
    assert seen[-1] == (["a", "b", "mask"], "cpu", "cpu")
