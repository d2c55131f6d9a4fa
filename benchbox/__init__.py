"""benchbox: a plugin-registry benchmark harness for medical image fusion and segmentation.

This module is the public API for plugin authors and scripts: everything a built-in
plugin uses is importable from here (the built-ins in ``benchbox_plugins`` import
nothing else but :mod:`benchbox.metrics` and :mod:`benchbox.data`, the metric functions
and dataset readers they register; a test keeps it so).

* writing a plugin: :data:`hookimpl`, :class:`Register` (the ``register`` callback of
  every ``register_*`` hook, see :mod:`benchbox.hookspecs`), :class:`RunInfo` (what the
  lifecycle hooks are told), the executor types :class:`Job`, :class:`Outcome`,
  :class:`Events` and :func:`run_worker`, the tracker helpers :func:`flat_params` and
  :func:`scalar_metrics`, and the local weights loaders :func:`load_weights`,
  :func:`read_state_dict`, :func:`apply_state_dict`;
* looking components up: ``get_<kind>(name, ...)`` builds one, ``list_<kinds>(pattern)``
  lists the registered entries, for the 10 kinds (fusion, segmenter, loss, dataset,
  metric, executor, tracker, transform, region, distiller); an unknown name raises that kind's
  ``Unknown*Error`` with the closest names;
* the errors a user can cause (:class:`BenchboxError` and its children).

Importing this package is cheap: it does not import torch. Lookups load the installed
plugins on first use; the other names are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from benchbox.errors import (
    BenchboxError,
    ConfigError,
    DataError,
    DuplicatePluginError,
    MetricInputError,
    PluginBugError,
    PluginError,
    PluginWarning,
    TrainingDivergedError,
    UnknownComponentError,
    UnknownDatasetError,
    UnknownDistillerError,
    UnknownExecutorError,
    UnknownFusionError,
    UnknownKindError,
    UnknownLossError,
    UnknownMetricError,
    UnknownRegionError,
    UnknownSegmenterError,
    UnknownTrackerError,
    UnknownTransformError,
    WeightsError,
    WriteError,
)
from benchbox.hookspecs import Register, RunInfo, hookimpl

if TYPE_CHECKING:
    from benchbox.hooks.lifecycle import flat_params
    from benchbox.hooks.registry import Entry, Registry
    from benchbox.metrics.summary import scalar_metrics
    from benchbox.records.weights import SHOW, apply_state_dict, load_weights, read_state_dict
    from benchbox.sweep.executor import (
        Events,
        ForkServer,
        Job,
        Outcome,
        resolve_start,
        run_worker,
    )

__version__ = "0.1.0"

#: Names imported from their module on first use (PEP 562), so ``import benchbox``
#: stays cheap.
_LAZY = {
    "Entry": "benchbox.hooks.registry",
    "Registry": "benchbox.hooks.registry",
    "flat_params": "benchbox.hooks.lifecycle",
    "scalar_metrics": "benchbox.metrics.summary",
    "SHOW": "benchbox.records.weights",
    "apply_state_dict": "benchbox.records.weights",
    "load_weights": "benchbox.records.weights",
    "read_state_dict": "benchbox.records.weights",
    "Events": "benchbox.sweep.executor",
    "Job": "benchbox.sweep.executor",
    "Outcome": "benchbox.sweep.executor",
    "ForkServer": "benchbox.sweep.executor",
    "resolve_start": "benchbox.sweep.executor",
    "run_worker": "benchbox.sweep.executor",
}

__all__ = [
    "SHOW",
    "BenchboxError",
    "ConfigError",
    "DataError",
    "DuplicatePluginError",
    "Entry",
    "Events",
    "ForkServer",
    "Job",
    "MetricInputError",
    "Outcome",
    "PluginBugError",
    "PluginError",
    "PluginWarning",
    "Register",
    "Registry",
    "RunInfo",
    "TrainingDivergedError",
    "UnknownComponentError",
    "UnknownDatasetError",
    "UnknownDistillerError",
    "UnknownExecutorError",
    "UnknownFusionError",
    "UnknownKindError",
    "UnknownLossError",
    "UnknownMetricError",
    "UnknownRegionError",
    "UnknownSegmenterError",
    "UnknownTrackerError",
    "UnknownTransformError",
    "WeightsError",
    "WriteError",
    "__version__",
    "apply_state_dict",
    "flat_params",
    "get_dataset",
    "get_distiller",
    "get_executor",
    "get_fusion",
    "get_loss",
    "get_metric",
    "get_region",
    "get_segmenter",
    "get_tracker",
    "get_transform",
    "hookimpl",
    "list_datasets",
    "list_distillers",
    "list_executors",
    "list_fusions",
    "list_losses",
    "list_metrics",
    "list_regions",
    "list_segmenters",
    "list_trackers",
    "list_transforms",
    "load_weights",
    "read_state_dict",
    "resolve_start",
    "run_worker",
    "scalar_metrics",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _registry() -> Registry:
    from benchbox.hooks.manager import get_registry

    return get_registry()


def get_fusion(name: str, **params: Any) -> Any:
    """Build the fusion model registered as ``name`` (``torch.nn.Module``)."""
    return _registry().get("fusion", name).build(**params)


def get_segmenter(name: str, in_channels: int = 1, num_classes: int = 2, **params: Any) -> Any:
    """Build the segmenter registered as ``name`` (``torch.nn.Module``)."""
    return (
        _registry()
        .get("segmenter", name)
        .build(in_channels=in_channels, num_classes=num_classes, **params)
    )


def get_loss(name: str, **params: Any) -> Any:
    """Build the loss registered as ``name`` (``torch.nn.Module``)."""
    return _registry().get("loss", name).build(**params)


def get_dataset(name: str, root: str | None = None, **params: Any) -> Any:
    """Build the dataset registered as ``name``; ``root`` is the ``NAME:PATH`` part."""
    entry = _registry().get("dataset", name)
    return entry.build(**params) if root is None else entry.build(root=root, **params)


def get_metric(name: str) -> Entry:
    """The metric registered as ``name``: call ``.factory``; ``.info`` holds its task."""
    return _registry().get("metric", name)


def get_executor(name: str, **params: Any) -> Any:
    """Build the sweep executor registered as ``name`` (``local``, ``ray``)."""
    return _registry().get("executor", name).build(**params)


def get_tracker(name: str, **params: Any) -> Any:
    """Build the experiment tracker registered as ``name`` (``tensorboard``, ``mlflow``)."""
    return _registry().get("tracker", name).build(**params)


def get_transform(name: str, **params: Any) -> Any:
    """Build the augmentation transform registered as ``name`` (``flip``, ``affine``)."""
    return _registry().get("transform", name).build(**params)


def get_region(name: str) -> dict[str, tuple[int, ...]]:
    """The region preset registered as ``name``: ``{region: labels}`` (``brats``)."""
    return dict(_registry().get("region", name).build())


def get_distiller(name: str, **params: Any) -> Any:
    """Build the distiller registered as ``name`` (``torch.nn.Module``: ``logits``, ``cwd``)."""
    return _registry().get("distiller", name).build(**params)


def list_fusions(pattern: str = "*") -> list[Entry]:
    """Registered fusion models whose name matches the glob ``pattern``."""
    return _registry().list("fusion", pattern)


def list_segmenters(pattern: str = "*") -> list[Entry]:
    """Registered segmenters whose name matches the glob ``pattern``."""
    return _registry().list("segmenter", pattern)


def list_losses(pattern: str = "*") -> list[Entry]:
    """Registered losses whose name matches the glob ``pattern``."""
    return _registry().list("loss", pattern)


def list_datasets(pattern: str = "*") -> list[Entry]:
    """Registered datasets whose name matches the glob ``pattern``."""
    return _registry().list("dataset", pattern)


def list_metrics(pattern: str = "*") -> list[Entry]:
    """Registered metrics whose name matches the glob ``pattern``."""
    return _registry().list("metric", pattern)


def list_executors(pattern: str = "*") -> list[Entry]:
    """Registered sweep executors whose name matches the glob ``pattern``."""
    return _registry().list("executor", pattern)


def list_trackers(pattern: str = "*") -> list[Entry]:
    """Registered experiment trackers whose name matches the glob ``pattern``."""
    return _registry().list("tracker", pattern)


def list_transforms(pattern: str = "*") -> list[Entry]:
    """Registered augmentation transforms whose name matches the glob ``pattern``."""
    return _registry().list("transform", pattern)


def list_regions(pattern: str = "*") -> list[Entry]:
    """Registered region presets whose name matches the glob ``pattern``."""
    return _registry().list("region", pattern)


def list_distillers(pattern: str = "*") -> list[Entry]:
    """Registered distillers (knowledge distillation losses) matching the glob ``pattern``."""
    return _registry().list("distiller", pattern)
