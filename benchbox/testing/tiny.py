"""Settings of a tiny run: a plugin smoke-tested end to end in seconds on a CPU.

32x32 phantom slices (8 train, 2 val, 4 test), batch 4, one epoch of each stage. The
built-in fusion models and segmenters that have a width and a depth run at width 4 and
depth 2, set in tables named after them (``seg_opts = {"attunet": {...}}``) that apply
to those models only, so any other component runs with its own defaults. The numbers
such a run prints mean nothing; it checks that every stage runs and every record is
written.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["tiny_run_settings"]

_SMALL = {"width": 4, "depth": 2}
_TINY: dict[str, Any] = {
    "image_size": 32,
    "batch_size": 4,
    "eval_batch_size": 8,
    "epochs": 1,
    "fusion_epochs": 1,
    "warmup_steps": 0,
    "examples": 1,
    "data_opts": {"synthetic": {"n_train": 8, "n_val": 2, "n_test": 4}},
    "fusion_opts": {name: dict(_SMALL) for name in ("dual", "concat")},
    "seg_opts": {name: dict(_SMALL) for name in ("attunet", "unet")},
}


def tiny_run_settings(**overrides: Any) -> dict[str, Any]:
    """The tiny run's settings (a fresh copy) with ``overrides`` on top, for
    :func:`benchbox.config.layers.resolve`'s overrides.

    An override replaces a whole setting: ``seg_opts={"heads": 2}`` drops the built-in
    models' sizes, which is what a run of another segmenter wants.
    """
    return {**copy.deepcopy(_TINY), **overrides}
