"""Run trained models over a dataset split: batching, prediction, back to the scan's grid.

This is the one module that applies a fusion model and/or a segmenter to data. The
runner scores what it yields (:func:`score_split`), and a command that
only writes predictions uses it the same way::

    predictor = Predictor(fusion, segmenter, device, amp)
    for case in predict_split(dataset, predictor, "test"):
        case.fused        # float32 in [0, 1], the network grid, or None
        case.restored     # class indices on the source scan's grid, or None
        if case.volume is not None and case.restored is not None:
            save_prediction(case.volume, case.restored, out / f"{case.case_id}.nii.gz")

2D datasets are predicted in batches of samples, one :class:`CasePrediction` per
sample. 3D datasets (whose ``volumes()`` returns cases) are predicted slice by slice in
batches and stacked by a 2D run, and by sliding windows over the whole volume by a 3D
run (:mod:`benchbox.engine.windows`); either way the class probabilities, not the
labels, are then mapped back onto the source grid (undoing crop, resize or resampling,
and reorientation) and the argmax taken there, which gives smoother boundaries than
nearest-neighbour labels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from benchbox.data.base import BenchDataset, Volume
from benchbox.data.io import save_prediction
from benchbox.engine.device import AmpPlan
from benchbox.engine.train import make_loader
from benchbox.engine.tta import passes, segment
from benchbox.engine.windows import Windows, slide
from benchbox.scoring.prediction import CasePrediction
from benchbox.scoring.split import SplitScores, score_predictions

__all__ = [
    "CasePrediction",
    "Predictor",
    "predict_split",
    "predict_volume",
    "save_prediction",
    "score_split",
]


class Predictor:
    """Runs the fusion and segmentation forward passes of one batch and times them.

    Attributes:
        images: images predicted so far (the warm-up pass excluded); in 3D the slices
            of the volumes predicted, so that images/s compare with 2D runs.
        seconds: time spent in timed forward passes (CUDA synchronised).
        windows: the sliding windows of a 3D run (:meth:`volume`), ``None`` in 2D.
    """

    def __init__(
        self,
        fusion: torch.nn.Module | None,
        segmenter: torch.nn.Module | None,
        device: torch.device,
        amp: AmpPlan,
        tta: str = "none",
        windows: Windows | None = None,
    ) -> None:
        passes(tta)  # a bad mode fails here, not at the first batch
        self.fusion, self.segmenter, self.device, self.amp = fusion, segmenter, device, amp
        self.tta, self.windows = tta, windows
        self.images = 0
        self.seconds = 0.0
        self._warm = False

    @property
    def images_per_s(self) -> float:
        """Measured inference speed (0 before any prediction)."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def __call__(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Sources ``(B, 1, H, W)`` -> fused ``(B, 1, H, W)`` float32, labels ``(B, H, W)``
        and class probabilities ``(B, K, H, W)`` (K >= 2; a sigmoid output becomes the
        two classes ``1 - p, p``), averaged over the mirrored passes of ``tta``
        (:mod:`benchbox.engine.tta`). What a model-less stage would give is ``None``."""
        a, b = a.to(self.device), b.to(self.device)
        if not self._warm:
            # One untimed pass at the batch's shape: first calls pay for allocation and
            # for the convolution backends' per-shape setup.
            self._forward(a, b)
            self._warm = True
        t0 = self._clock()
        fused, probs = self._forward(a, b)
        labels = None if probs is None else probs.argmax(dim=1)
        self.seconds += self._clock() - t0
        self.images += int(a.shape[0])
        self._check(fused, probs)
        return fused, labels, probs

    def volume(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """3D: sources ``(1, 1, D, H, W)`` -> the fused volume ``(1, 1, D, H, W)`` and the
        class probabilities ``(1, K, D, H, W)``, blended over the sliding windows
        (:mod:`benchbox.engine.windows`), each window averaged over the passes of
        ``tta``; ``None`` for a stage without a model."""
        assert self.windows is not None, "a 2D predictor has no windows"
        a, b = a.to(self.device), b.to(self.device)
        if not self._warm:
            # One untimed batch of windows: allocation and per-shape setup.
            size = (self.windows.batch, 1, *self.windows.size)
            self._forward(
                torch.zeros(size, device=self.device), torch.zeros(size, device=self.device)
            )
            self._warm = True
        t0 = self._clock()
        with torch.inference_mode():
            fused, probs = slide(self._forward, a, b, self.windows)
        self.seconds += self._clock() - t0
        self.images += int(a.shape[2])
        self._check(fused, probs)
        return fused, probs

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _check(self, fused: torch.Tensor | None, probs: torch.Tensor | None) -> None:
        """Called with every prediction (a validation predictor checks it is finite)."""

    def _forward(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(fused, probabilities)`` of one batch of slices or windows."""
        probs = None
        with torch.inference_mode(), self.amp.autocast():
            fused = self.fusion(a, b).float() if self.fusion is not None else None
            if self.segmenter is not None:
                x = fused if fused is not None else torch.cat([a, b], dim=1)
                probs = segment(self.segmenter, x, self.tta)
        return fused, probs


def predict_split(
    dataset: BenchDataset,
    predictor: Predictor,
    split: str = "test",
    batch_size: int = 64,
    whole_cases: bool | None = None,
    max_cases: int = 0,
) -> Iterator[CasePrediction]:
    """Predict every case of a split, in order.

    Args:
        dataset: any dataset plugin.
        predictor: the models to apply.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: slices per forward pass.
        whole_cases: predict the dataset's 3D volumes (one :class:`CasePrediction` per
            volume, restored to the source grid) rather than its 2D samples. By
            default volumes are used when the predictor segments and the dataset has
            them; a fusion-only predictor yields 2D samples.
        max_cases: predict at most this many cases (samples or volumes), evenly spaced
            over the split (see :func:`spread`); 0 predicts them all.

    Yields:
        One :class:`CasePrediction` per sample or volume.
    """
    if whole_cases is None:
        whole_cases = predictor.segmenter is not None
    volumes = dataset.volumes(split) if whole_cases else None
    if volumes is None:
        samples = spread(dataset.split(split), max_cases)
        yield from _predict_samples(samples, predictor, batch_size)
    else:
        for volume in spread(volumes, max_cases):
            yield predict_volume(volume, predictor, batch_size)


_KNOWN = frozenset({"a", "b", "mask", "case_id", "spacing"})


def spread(cases: Any, limit: int) -> Any:
    """At most ``limit`` cases, evenly spaced (deterministic); all when ``limit`` is 0.

    ``cases`` is a list (volumes) or a ``torch.utils.data.Dataset`` (samples, kept as a
    ``Subset``).
    """
    n = len(cases)
    if limit <= 0 or n <= limit:
        return cases
    keep = sorted({round(i * (n - 1) / max(limit - 1, 1)) for i in range(limit)})
    if isinstance(cases, torch.utils.data.Dataset):
        return torch.utils.data.Subset(cases, keep)
    return [cases[i] for i in keep]


def _predict_samples(
    samples: Any, predictor: Predictor, batch_size: int
) -> Iterator[CasePrediction]:
    loader = make_loader(samples, batch_size, shuffle=False, seed=0)
    for batch in loader:
        fused, labels, _ = predictor(batch["a"], batch["b"])
        a = batch["a"][:, 0].numpy()
        b = batch["b"][:, 0].numpy()
        f = fused[:, 0].cpu().numpy() if fused is not None else None
        p = labels.cpu().numpy() if labels is not None else None
        m = batch["mask"].numpy() if "mask" in batch else None
        extra = {k: v.numpy() for k, v in batch.items() if k not in _KNOWN and torch.is_tensor(v)}
        for i, case_id in enumerate(batch["case_id"]):
            spacing = tuple(float(s) for s in batch["spacing"][i])
            yield CasePrediction(
                case_id=case_id,
                a=a[i],
                b=b[i],
                fused=None if f is None else f[i],
                labels=None if p is None else p[i],
                mask=None if m is None else m[i],
                spacing=spacing,
                restored=None if p is None else p[i],
                reference=None if m is None else m[i],
                reference_spacing=spacing,
                extra={k: v[i] for k, v in extra.items()},
            )


def _slice_batches(
    volume: Volume, batch_size: int
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    depth = volume.a.shape[0]
    for start in range(0, depth, batch_size):
        sl = slice(start, min(start + batch_size, depth))
        yield (
            sl,
            # Copies: a volume may be a read-only memory map of the cache.
            torch.from_numpy(np.array(volume.a[sl]))[:, None],
            torch.from_numpy(np.array(volume.b[sl]))[:, None],
        )


def _predict_windows(volume: Volume, predictor: Predictor) -> tuple[Any, Any, Any]:
    """A 3D run's prediction of a whole volume: fused ``(D, H, W)``, labels ``(D, H, W)``
    and scores ``(D, K, H, W)`` on the network grid (``None`` where there is no model)."""
    a = torch.from_numpy(np.array(volume.a, dtype=np.float32))[None, None]
    b = torch.from_numpy(np.array(volume.b, dtype=np.float32))[None, None]
    fused, probs = predictor.volume(a, b)
    fused_vol = None if fused is None else fused[0, 0].cpu().numpy()
    if probs is None:
        return fused_vol, None, None
    scores = probs[0].transpose(0, 1).float().cpu().numpy()
    return fused_vol, scores.argmax(axis=1), scores


def predict_volume(volume: Volume, predictor: Predictor, batch_size: int = 64) -> CasePrediction:
    """Predict one 3D case and restore the labels to its source grid: slice by slice in a
    2D run, by sliding windows in a 3D run (``predictor.windows``).

    With a segmenter, the class probabilities ``(D, K, H, W)`` go through
    ``volume.restore`` (bilinear or trilinear, then argmax on the source grid).
    """
    fused_vol: np.ndarray | None = None
    pred: np.ndarray | None = None
    scores: np.ndarray | None = None
    slices = _slice_batches(volume, batch_size) if predictor.windows is None else ()
    if predictor.windows is not None:
        fused_vol, pred, scores = _predict_windows(volume, predictor)
    for sl, a, b in slices:
        fused, labels, probs = predictor(a, b)
        if fused is not None:
            if fused_vol is None:
                fused_vol = np.zeros(volume.a.shape, dtype=np.float32)
            fused_vol[sl] = fused[:, 0].cpu().numpy()
        if labels is not None and probs is not None:
            if pred is None or scores is None:
                depth, height, width = volume.a.shape
                pred = np.zeros((depth, height, width), dtype=np.int64)
                scores = np.zeros((depth, int(probs.shape[1]), height, width), np.float32)
            pred[sl] = labels.cpu().numpy()
            scores[sl] = probs.cpu().numpy()
    restored = None
    if pred is not None and scores is not None:
        restored = volume.restore(scores) if volume.restore is not None else pred
    reference: np.ndarray | None
    if volume.source_mask is not None:
        reference, ref_spacing = volume.source_mask, tuple(volume.reference.spacing)
    else:
        reference, ref_spacing = volume.mask, tuple(volume.spacing)
    return CasePrediction(
        case_id=volume.case_id,
        a=volume.a,
        b=volume.b,
        fused=fused_vol,
        labels=pred,
        mask=volume.mask,
        spacing=tuple(volume.spacing),
        restored=restored,
        reference=reference,
        reference_spacing=ref_spacing,
        volume=volume,
    )


def score_split(
    dataset: BenchDataset,
    predictor: Predictor,
    *,
    split: str = "test",
    batch_size: int = 64,
    max_cases: int = 0,
    **scoring: Any,
) -> SplitScores:
    """Predict every case of ``split`` (at most ``max_cases``, evenly spaced; 0: all) and
    score it (:func:`benchbox.scoring.split.score_predictions`, which takes the other
    keyword arguments); the scores carry the predictor's timing of this split."""
    images, seconds = predictor.images, predictor.seconds
    cases = predict_split(dataset, predictor, split, batch_size, max_cases=max_cases)
    result = score_predictions(cases, dataset.eval_regions(), **scoring)
    result.infer_images = predictor.images - images
    result.infer_seconds = predictor.seconds - seconds
    return result
