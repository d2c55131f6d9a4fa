"""The region presets of the built-in datasets plugin (``--region brats``)."""

from __future__ import annotations

import sys
from pathlib import Path

import benchbox_plugins.datasets as builtin_datasets
from benchbox.hooks.manager import create_registry
from benchbox.metrics.suite import region_preset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]


def test_brats_is_registered_by_the_datasets_plugin() -> None:
    registry = create_registry([builtin_datasets], entry_points=False, strict=True)
    entry = registry.get("region", "brats")
    assert "BraTS" in entry.description
    assert region_preset("brats", registry) == {
        "whole-tumour": (1, 2, 3, 4),
        "tumour-core": (1, 3, 4),
        "enhancing-tumour": (4,),
    }


def test_brats_preset_agrees_with_the_brats_dataset_config() -> None:
    """The dataset config (configs/brats2015.toml) states the same regions its own way:
    ``"> 0"`` for every declared label above 0."""
    config = tomllib.loads((REPO / "configs" / "brats2015.toml").read_text())
    labels = sorted(int(k) for k in config["labels"])
    from_config = {
        name: tuple(v for v in labels if v > 0) if spec == "> 0" else tuple(spec)
        for name, spec in config["regions"].items()
    }
    registry = create_registry([builtin_datasets], entry_points=False, strict=True)
    assert region_preset("brats", registry) == from_config
