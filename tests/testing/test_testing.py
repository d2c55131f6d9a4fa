"""The tiny-run settings that plugin tests (ours and others') start from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchbox import config as cfg
from benchbox.engine import runner
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.testing import tiny_run_settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"


def test_tiny_settings_resolve_to_a_small_valid_run_and_are_fresh_copies():
    settings = tiny_run_settings(seed=3)
    config = cfg.resolve(None, None, settings)
    config.validate()
    assert (config.image_size, config.epochs, config.seed) == (32, 1, 3)
    assert config.params("seg_opts")["width"] == 4
    settings["data_opts"]["synthetic"]["n_train"] = 999  # a caller's edit stays its own
    assert tiny_run_settings()["data_opts"]["synthetic"]["n_train"] == 8


@pytest.mark.integration
def test_a_tiny_run_of_models_with_neither_width_nor_depth(tmp_path, monkeypatch):
    # benchbox-contract-demo's cd-conv takes in_channels, num_classes and hidden only:
    # the built-in models' sizes must not reach it.
    monkeypatch.syspath_prepend(str(FIXTURES / "contracts"))
    settings = tiny_run_settings(
        out=str(tmp_path), seg="cd-conv", fusion="cd-conv-fusion", examples=0
    )
    with use_registry(create_registry()):
        result = runner.run(cfg.resolve(None, None, settings))
    assert result.summary["n_cases"] == 4
    record = json.loads(result.files["config"].read_text())
    assert record["seg_opts"]["attunet"] == {"width": 4, "depth": 2}
