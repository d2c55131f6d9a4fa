"""The tiny-run settings that plugin tests (ours and others') start from."""

from __future__ import annotations

from benchbox import config as cfg
from benchbox.testing import tiny_run_settings


def test_tiny_settings_resolve_to_a_small_valid_run_and_are_fresh_copies():
    settings = tiny_run_settings(seed=3)
    config = cfg.resolve(None, None, settings)
    config.validate()
    assert (config.image_size, config.epochs, config.seed) == (32, 1, 3)
    assert config.params("seg_opts")["width"] == 4
    settings["data_opts"]["synthetic"]["n_train"] = 999  # a caller's edit stays its own
    assert tiny_run_settings()["data_opts"]["synthetic"]["n_train"] == 8
