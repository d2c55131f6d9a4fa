"""Imported once by the forkserver that a sweep's workers are forked from.

Each run of a sweep is a process of its own, so that its crash, NaN or out-of-memory
kill cannot touch another run. Started fresh, such a process spends seconds importing
torch and what a run uses before any work. Forked from a server that imported them
once, it starts with them loaded (:mod:`benchbox.sweep.process`).

Only modules are imported here, nothing is run: torch starts its thread pools on first
use, not on import, so the server forks children with no torch thread in it (each child
sets its own thread counts), and CUDA is never asked about, so a child can initialise
it (a process that did cannot fork children that use it). A module that fails to
import is left to the child, which then imports it, or reports the failure, itself.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

__all__ = ["MODULES"]

#: What a run imports, heaviest first: torch and the parts of it a training step loads
#: (the optimizer imports dynamo), the libraries of records and metrics, then benchbox's
#: run path.
MODULES = (
    "torch",
    "torch._dynamo",
    "torch._inductor.config",
    "numpy",
    "pandas",
    "scipy.ndimage",
    "scipy.spatial",
    "PIL.Image",
    "PIL.ImageDraw",
    "SimpleITK",
    "filelock",
    "threadpoolctl",
    "benchbox.engine.prepare",
    "benchbox.engine.runner",
    "benchbox.engine.inference",
    "benchbox.metrics.suite",
    "benchbox.records.rundir",
    "benchbox.records.leaderboard",
    "benchbox.hooks.manager",
    "benchbox.sweep.worker",
)


def _preload() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the child imports it again and reports it
            continue
    # The built-in plugins only: a third-party plugin's import might start threads.
    for entry in entry_points(group="benchbox"):
        if entry.value.startswith("benchbox_plugins"):
            try:
                entry.load()
            except Exception:  # as above
                continue


_preload()
