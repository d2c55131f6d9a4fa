"""The prediction of one case, as scoring reads it: the sources, the fused image, the labels
on the network grid and on the source scan's grid, and the reference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchbox.data.base import Volume

__all__ = ["CasePrediction"]


@dataclass
class CasePrediction:
    """The prediction of one case (a 2D sample, or a whole 3D volume).

    Arrays on the network grid are ``(H, W)`` for a 2D sample and ``(D, H, W)`` for a
    volume; ``restored`` and ``reference`` are on the source scan's grid.

    Attributes:
        case_id: the case's name, unique in the split.
        a, b: the preprocessed sources, ``float32`` in ``[0, 1]``.
        fused: the fused image, ``float32`` in ``[0, 1]``; ``None`` without fusion.
        labels: predicted class indices (``int64``); ``None`` without a segmenter.
        mask: the reference class indices on the network grid, if labelled.
        spacing: the voxel size in mm of the network-grid arrays, per axis.
        restored: ``labels`` mapped back onto the source grid (equal to ``labels``
            when the dataset has no source grid to restore to).
        reference: the reference class indices on the source grid (``mask`` when the
            dataset keeps no source-grid labels); ``None`` if unlabelled.
        reference_spacing: the voxel size in mm of ``restored`` and ``reference``.
        volume: the 3D case (geometry for :func:`save_prediction`); ``None`` in 2D.
        extra: the sample's other arrays, e.g. a colour source's ``a_chroma``.
    """

    case_id: str
    a: np.ndarray
    b: np.ndarray
    fused: np.ndarray | None
    labels: np.ndarray | None
    mask: np.ndarray | None
    spacing: tuple[float, ...]
    restored: np.ndarray | None = None
    reference: np.ndarray | None = None
    reference_spacing: tuple[float, ...] = ()
    volume: Volume | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def postprocess(self, fn: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """Apply ``fn`` (:mod:`benchbox.engine.postprocess`) to the labels on the source grid,
        the ones scored and saved; a 2D sample's ``labels`` are those same labels."""
        if fn is None or self.restored is None:
            return
        self.restored = fn(self.restored)
        if self.volume is None:
            self.labels = self.restored
