"""The built-in metric plugin: what it registers and how it is looked up (the contract
of every registered metric is checked by benchbox.testing, in
tests/plugins/test_contracts.py)."""

from __future__ import annotations

import pytest

import benchbox
import benchbox_plugins.metrics as builtin_metrics
from benchbox.hooks.manager import create_registry, use_registry

FUSION = {"en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "nabf", "ssim", "ms-ssim", "psnr"}
SEGMENTATION = {"dice", "iou", "precision", "recall", "hd", "hd95", "assd", "nsd"}
LOWER_IS_BETTER = {"nabf", "hd", "hd95", "assd"}


def test_builtins_register_every_metric_with_its_info() -> None:
    reg = create_registry([builtin_metrics], entry_points=False, strict=True)
    entries = {e.name: e for e in reg.list("metric")}
    assert set(entries) == FUSION | SEGMENTATION
    for name, entry in entries.items():
        assert entry.info["task"] == ("fusion" if name in FUSION else "segmentation")
        assert entry.info["higher_is_better"] is (name not in LOWER_IS_BETTER)
        assert entry.description and not entry.description.endswith(".")
    assert entries["hd95"].info["unit"] == "mm"
    assert entries["ms-ssim"].info["min_size"] == 176


def test_builtins_load_through_the_entry_point() -> None:
    reg = create_registry(env="benchbox")
    assert not [e for e in reg.load_errors if "metrics" in str(e.provider)]
    assert {e.name for e in reg.list("metric")} >= FUSION | SEGMENTATION
    assert str(reg.get("metric", "dice").provider).startswith("benchbox")


def test_public_lookup() -> None:
    reg = create_registry([builtin_metrics], entry_points=False)
    with use_registry(reg):
        entry = benchbox.get_metric("hd95")
        assert entry.info["task"] == "segmentation"
        with pytest.raises(benchbox.UnknownMetricError, match="did you mean 'hd95'"):
            benchbox.get_metric("hd96")
