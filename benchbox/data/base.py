"""The dataset contract every dataset plugin satisfies.

A dataset has named splits of 2D samples. Each sample is a dict:

* ``a``, ``b``: ``float32`` tensors ``(1, H, W)`` in ``[0, 1]``, the two registered
  sources (modality names in :attr:`BenchDataset.modalities`);
* ``mask`` (labelled datasets only): ``int64`` tensor ``(H, W)`` of class indices;
* ``case_id``: ``str``, unique within the split;
* ``spacing``: ``float64`` tensor ``(2,)``, the pixel size in mm as ``(row, column)``;

and may carry more keys (e.g. ``slice``, the index in its volume), which the harness
passes through.

A 3D dataset also provides :meth:`BenchDataset.volumes`, whole cases that the
evaluation predicts slice by slice and scores in 3D millimetres.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from benchbox.errors import DataError

__all__ = ["SPLITS", "BenchDataset", "Sample", "Volume"]

SPLITS: tuple[str, ...] = ("train", "val", "test")

Sample = dict[str, Any]


@dataclass
class Volume:
    """One 3D case for evaluation, already preprocessed like the training slices.

    Attributes:
        case_id: unique within the split.
        a, b: ``float32 (D, H, W)`` in ``[0, 1]``: the sources, slice by slice.
        mask: ``int64 (D, H, W)`` class indices, or ``None`` when unlabelled.
        spacing: ``(z, y, x)`` voxel size in mm of the arrays above.
        restore: maps a ``(D, H, W)`` label prediction back onto the source scan's voxel
            grid (undoing crop and resize) so that metrics and saved predictions use the
            source geometry; identity when ``None``.
        reference: the source image geometry (:class:`benchbox.data.io.Image`) for
            saving predictions that overlay the scan; ``None`` for synthetic data.
        source_mask: the label volume on the source grid, compared with the restored
            prediction; ``None`` means ``mask`` is already on the source grid.
    """

    case_id: str
    a: np.ndarray
    b: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float, float]
    restore: Callable[[np.ndarray], np.ndarray] | None = None
    reference: Any = None
    source_mask: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BenchDataset(abc.ABC):
    """Base class of datasets; a plugin may also provide any object with these members.

    Attributes:
        name: the slug of the leaderboard file, ``leaderboards/<name>.csv``.
        modalities: the names of sources ``a`` and ``b`` (e.g. ``("CT", "MRI")``).
        labels: class index -> name, background (0) included; ``None`` if unlabelled.
        regions: evaluation regions, name -> the labels they unite (BraTS
            ``{"whole-tumour": (1, 2, 3, 4)}``); empty means one region per foreground
            class.
    """

    name: str = "dataset"
    modalities: tuple[str, str] = ("A", "B")
    labels: Mapping[int, str] | None = None
    regions: Mapping[str, tuple[int, ...]] = MappingProxyType({})

    @property
    def has_labels(self) -> bool:
        return bool(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else 0

    @property
    def splits(self) -> tuple[str, ...]:
        return SPLITS

    @abc.abstractmethod
    def split(self, name: str) -> Sequence[Sample]:
        """The samples of split ``name``, as a map-style ``torch.utils.data.Dataset``.

        Raises:
            DataError: the split does not exist or holds no sample.
        """

    def has_foreground(self, split: str) -> bool | None:
        """Whether any sample of ``split`` holds a foreground (non-zero) class.

        ``None`` when unlabelled or not known cheaply; the runner refuses to train a
        segmenter on a training split whose masks are all background.
        """
        return None

    def volumes(self, split: str) -> Sequence[Volume] | None:
        """Whole 3D cases of ``split`` for 3D evaluation; ``None`` for 2D datasets."""
        return None

    def config(self) -> dict[str, Any]:
        """The dataset's resolved parameters, recorded with every run."""
        return {}

    def eval_regions(self) -> dict[str, tuple[int, ...]]:
        """The regions to score: :attr:`regions`, or one per foreground class."""
        if self.regions:
            return {k: tuple(v) for k, v in self.regions.items()}
        return {name: (idx,) for idx, name in (self.labels or {}).items() if idx != 0}

    def check_split(self, name: str) -> None:
        if name not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {name!r} (splits: {', '.join(self.splits)})"
            )
