"""The built-in metric plugin: what it registers, and the metric contract for all of them.

The contract test runs every registered metric (built-in or installed by a plugin)
on random, empty and one-sided inputs: each must return finite numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import benchbox
import benchbox_plugins.metrics as builtin_metrics
from benchbox.hooks.manager import create_registry, get_registry, use_registry

FUSION = {"en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "nabf", "ssim", "ms-ssim", "psnr"}
SEGMENTATION = {"dice", "iou", "precision", "recall", "hd", "hd95", "assd", "nsd"}
LOWER_IS_BETTER = {"nabf", "hd", "hd95", "assd"}


def _values(result) -> list[float]:
    return list(result.values()) if isinstance(result, dict) else [result]


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


def _all_metrics():
    return [pytest.param(e, id=e.name) for e in get_registry().list("metric")]


@pytest.mark.parametrize("entry", _all_metrics())
def test_metric_contract(entry) -> None:
    rng = np.random.default_rng(0)
    if entry.info["task"] == "fusion":
        size = max(int(entry.info.get("min_size", 0)), 32)
        a, b = rng.random((size, size)), rng.random((size, size))
        cases = [((a + b) / 2, a, b), (a, a, a), (np.zeros_like(a),) * 3]
        results = [entry.factory(*case) for case in cases]
    else:
        results = []
        for shape, spacing in (((12, 10), (0.5, 2.0)), ((6, 8, 7), (2.0, 1.0, 0.7))):
            mask = rng.random(shape) > 0.5
            empty = np.zeros(shape, bool)
            for pred, ref in ((mask, ~mask), (mask, mask), (empty, mask), (mask, empty),
                              (empty, empty)):  # fmt: skip
                results.append(entry.factory(pred, ref, spacing))
    for result in results:
        values = _values(result)
        assert values and all(isinstance(v, float) and math.isfinite(v) for v in values)
