"""Datasets: the contract every dataset plugin satisfies, the synthetic phantom, and the
readers of real images on disk (registered by the built-in dataset plugin).

Public here: the contract (:class:`BenchDataset`, :class:`Sample`, :class:`Volume`,
:data:`SPLITS`), the phantoms (:class:`SyntheticDataset`, its 3D variant
:class:`Synthetic3DDataset`) and the readers
(:func:`open_pairs`, :func:`open_nifti`, :func:`open_cases`) and their readers of new
images for ``benchbox predict`` (:func:`open_inputs`). The readers and the
phantom are imported on first use (they import SimpleITK and torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from benchbox.data.base import SPLITS, BenchDataset, Sample, Volume

if TYPE_CHECKING:
    from benchbox.data.cases import open_cases
    from benchbox.data.inputs import open_inputs
    from benchbox.data.nifti import open_nifti
    from benchbox.data.pairs import open_pairs
    from benchbox.data.synthetic import SyntheticDataset
    from benchbox.data.synthetic3d import Synthetic3DDataset

_LAZY = {
    "Synthetic3DDataset": "benchbox.data.synthetic3d",
    "SyntheticDataset": "benchbox.data.synthetic",
    "open_cases": "benchbox.data.cases",
    "open_inputs": "benchbox.data.inputs",
    "open_nifti": "benchbox.data.nifti",
    "open_pairs": "benchbox.data.pairs",
}

__all__ = [
    "SPLITS",
    "BenchDataset",
    "Sample",
    "Synthetic3DDataset",
    "SyntheticDataset",
    "Volume",
    "open_cases",
    "open_inputs",
    "open_nifti",
    "open_pairs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchbox.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
