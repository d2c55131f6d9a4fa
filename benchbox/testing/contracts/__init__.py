"""The contract check of each component kind, derived from :mod:`benchbox.hookspecs`.

A check takes a registry :class:`benchbox.Entry` and returns a note on what it left
unchecked (``""`` if nothing); it raises :class:`benchbox.testing.ContractError` saying
what broke, or :class:`benchbox.testing.Unavailable` when the component cannot be
checked here. :func:`benchbox.testing.check_entry` runs them; use that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from benchbox import Entry
from benchbox.testing.contracts.datasets import check_dataset
from benchbox.testing.contracts.distillers import check_distiller
from benchbox.testing.contracts.losses import check_loss
from benchbox.testing.contracts.metrics import check_metric, check_region
from benchbox.testing.contracts.models import check_fusion, check_segmenter
from benchbox.testing.contracts.runs import check_executor, check_tracker
from benchbox.testing.contracts.transforms import check_transform

__all__ = [
    "CHECKS",
    "check_dataset",
    "check_distiller",
    "check_executor",
    "check_fusion",
    "check_loss",
    "check_metric",
    "check_region",
    "check_segmenter",
    "check_tracker",
    "check_transform",
]

#: The check of each kind, in the order of :data:`benchbox.hooks.registry.KINDS`.
CHECKS: Mapping[str, Callable[[Entry], str]] = {
    "fusion": check_fusion,
    "segmenter": check_segmenter,
    "loss": check_loss,
    "dataset": check_dataset,
    "metric": check_metric,
    "executor": check_executor,
    "tracker": check_tracker,
    "transform": check_transform,
    "region": check_region,
    "distiller": check_distiller,
}
