"""Settings of a tiny run: a plugin smoke-tested end to end in seconds on a CPU.

benchbox's own tests use them, and so can a plugin's::

    from benchbox import config

    from benchbox.engine import runner
    from benchbox.testing import tiny_run_settings

    settings = tiny_run_settings(out=str(tmp_path), seg="my-segmenter")
    result = runner.run(config.resolve(None, None, settings))

32x32 phantom slices (8 train, 2 val, 4 test), batch 4, one epoch of each stage, and
the built-in models at width 4 and depth 2. The numbers such a run prints mean nothing;
it checks that every stage runs and every record is written.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["tiny_run_settings"]

_TINY: dict[str, Any] = {
    "image_size": 32,
    "batch_size": 4,
    "eval_batch_size": 8,
    "epochs": 1,
    "fusion_epochs": 1,
    "warmup_steps": 0,
    "examples": 1,
    "data_opts": {"synthetic": {"n_train": 8, "n_val": 2, "n_test": 4}},
    "fusion_opts": {"width": 4, "depth": 2},
    "seg_opts": {"width": 4, "depth": 2},
}


def tiny_run_settings(**overrides: Any) -> dict[str, Any]:
    """The tiny run's settings (a fresh copy) with ``overrides`` on top, for
    :func:`benchbox.config.run.resolve`'s overrides."""
    return {**copy.deepcopy(_TINY), **overrides}
