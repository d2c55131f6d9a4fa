"""benchbox: a plugin-registry benchmark harness for medical image fusion and segmentation.

Importing this package is cheap: it does not import torch. Lookups load the installed
plugins on first use.
"""

from __future__ import annotations

from typing import Any

from benchbox.errors import (
    BenchboxError,
    ConfigError,
    DataError,
    DuplicatePluginError,
    PluginBugError,
    PluginError,
    UnknownComponentError,
    UnknownDatasetError,
    UnknownFusionError,
    UnknownKindError,
    UnknownLossError,
    UnknownMetricError,
    UnknownSegmenterError,
)
from benchbox.hooks.registry import Entry, Registry
from benchbox.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "BenchboxError",
    "ConfigError",
    "DataError",
    "DuplicatePluginError",
    "Entry",
    "PluginBugError",
    "PluginError",
    "UnknownComponentError",
    "UnknownDatasetError",
    "UnknownFusionError",
    "UnknownKindError",
    "UnknownLossError",
    "UnknownMetricError",
    "UnknownSegmenterError",
    "__version__",
    "get_dataset",
    "get_fusion",
    "get_loss",
    "get_metric",
    "get_segmenter",
    "hookimpl",
    "list_datasets",
    "list_fusions",
    "list_losses",
    "list_metrics",
    "list_segmenters",
]


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
