"""Evaluation of a trained fusion model and/or segmenter on a dataset split.

2D datasets are scored slice by slice. 3D datasets (those whose ``volumes()`` returns
cases) are predicted slice by slice, stacked, mapped back onto the source grid and
scored in 3D millimetres. Every number comes from :mod:`benchbox.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbox.data.base import BenchDataset, Volume
from benchbox.train import AmpPlan, make_loader


@dataclass
class EvalResult:
    """Per-case rows, their summary, measured inference speed and example images."""

    per_case: Any  # pandas.DataFrame
    summary: dict[str, float]
    infer_images: int = 0
    infer_seconds: float = 0.0
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)
    saved_predictions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def infer_images_per_s(self) -> float:
        return self.infer_images / self.infer_seconds if self.infer_seconds > 0 else 0.0


class Predictor:
    """Runs fusion and segmentation forward passes and times them."""

    def __init__(
        self,
        fusion: torch.nn.Module | None,
        segmenter: torch.nn.Module | None,
        device: torch.device,
        amp: AmpPlan,
    ) -> None:
        self.fusion, self.segmenter, self.device, self.amp = fusion, segmenter, device, amp
        self.images = 0
        self.seconds = 0.0
        self._warm = False

    def __call__(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Sources ``(B, 1, H, W)`` -> fused ``(B, 1, H, W)`` float32, labels ``(B, H, W)``
        and class probabilities ``(B, K, H, W)`` (K >= 2; a sigmoid output becomes the
        two classes ``1 - p, p``)."""
        a, b = a.to(self.device), b.to(self.device)
        if not self._warm:
            # One untimed pass at the batch's shape: first calls pay for allocation and
            # for the convolution backends' per-shape setup.
            self._forward(a, b)
            self._warm = True
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        out = self._forward(a, b)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        self.images += int(a.shape[0])
        return out

    def _forward(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        labels = probs = None
        with torch.inference_mode(), self.amp.autocast():
            fused = self.fusion(a, b).float() if self.fusion is not None else None
            if self.segmenter is not None:
                x = fused if fused is not None else torch.cat([a, b], dim=1)
                logits = self.segmenter(x).float()
                if logits.shape[1] == 1:  # one sigmoid channel, else softmax classes
                    p = torch.sigmoid(logits)
                    probs = torch.cat([1 - p, p], dim=1)
                else:
                    probs = torch.softmax(logits, dim=1)
                labels = probs.argmax(dim=1)
        return fused, labels, probs


class _FusionScorer:
    """Scores fused images with the fusion metrics that fit their size, chosen once."""

    def __init__(self) -> None:
        self.metrics: list[Any] | None = None
        self.left_out: list[str] = []

    def __call__(self, fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        from benchbox.metrics.suite import fusion_metrics_for_shape, score_fusion_case

        if self.metrics is None:
            self.metrics, too_small = fusion_metrics_for_shape(fused.shape)
            self.left_out = [
                f"{e.name} needs images of at least {e.info['min_size']} px" for e in too_small
            ]
        return score_fusion_case(
            fused.astype(np.float64), a.astype(np.float64), b.astype(np.float64), self.metrics
        )


def evaluate(
    dataset: BenchDataset,
    predictor: Predictor,
    *,
    split: str = "test",
    batch_size: int = 64,
    nsd_tolerance: float = 1.0,
    examples: int = 4,
    save_predictions: Path | None = None,
) -> EvalResult:
    """Predict every case of ``split`` and score it with the metrics that apply."""
    import pandas as pd

    from benchbox.metrics.suite import summarize

    score_fusion = _FusionScorer()
    volumes = dataset.volumes(split) if predictor.segmenter is not None else None
    if volumes is not None:
        rows, shown, saved = _evaluate_volumes(
            dataset,
            volumes,
            predictor,
            score_fusion,
            batch_size,
            nsd_tolerance,
            examples,
            save_predictions,
        )
    else:
        rows, shown = _evaluate_slices(
            dataset, split, predictor, score_fusion, batch_size, nsd_tolerance, examples
        )
        saved = []
    per_case = pd.DataFrame(rows)
    return EvalResult(
        per_case=per_case,
        summary=summarize(per_case),
        infer_images=predictor.images,
        infer_seconds=predictor.seconds,
        examples=shown,
        saved_predictions=saved,
        notes=[f"left out {note}" for note in score_fusion.left_out],
    )


def _evaluate_slices(
    dataset: BenchDataset,
    split: str,
    predictor: Predictor,
    score_fusion: _FusionScorer,
    batch_size: int,
    nsd_tolerance: float,
    examples: int,
) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]]]:
    from benchbox.metrics.suite import score_segmentation_case

    regions = dataset.eval_regions()
    loader = make_loader(dataset.split(split), batch_size, shuffle=False, seed=0)
    rows: list[dict[str, Any]] = []
    picker = _ExamplePicker(examples)
    for batch in loader:
        fused, labels, _ = predictor(batch["a"], batch["b"])
        a = batch["a"][:, 0].numpy()
        b = batch["b"][:, 0].numpy()
        f = fused[:, 0].cpu().numpy() if fused is not None else None
        p = labels.cpu().numpy() if labels is not None else None
        m = batch["mask"].numpy() if "mask" in batch else None
        for i, case_id in enumerate(batch["case_id"]):
            row: dict[str, Any] = {"case_id": case_id}
            if f is not None:
                row.update(score_fusion(f[i], a[i], b[i]))
            if p is not None and m is not None:
                spacing = tuple(float(s) for s in batch["spacing"][i])
                row.update(
                    score_segmentation_case(
                        p[i], m[i], spacing, regions, nsd_tolerance=nsd_tolerance
                    )
                )
            rows.append(row)
            picker.offer(
                a[i],
                b[i],
                None if f is None else f[i],
                None if m is None else m[i],
                None if p is None else p[i],
            )
    return rows, picker.chosen()


def _iter_batches(
    volume: Volume, batch_size: int
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    depth = volume.a.shape[0]
    for start in range(0, depth, batch_size):
        sl = slice(start, min(start + batch_size, depth))
        yield (
            sl,
            torch.from_numpy(np.ascontiguousarray(volume.a[sl]))[:, None],
            torch.from_numpy(np.ascontiguousarray(volume.b[sl]))[:, None],
        )


def _evaluate_volumes(
    dataset: BenchDataset,
    volumes: Any,
    predictor: Predictor,
    score_fusion: _FusionScorer,
    batch_size: int,
    nsd_tolerance: float,
    examples: int,
    save_predictions: Path | None,
) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]], list[str]]:
    from benchbox.metrics.suite import score_segmentation_case

    regions = dataset.eval_regions()
    rows: list[dict[str, Any]] = []
    saved: list[str] = []
    picker = _ExamplePicker(examples)
    for volume in volumes:
        pred = np.zeros(volume.a.shape, dtype=np.int64)
        scores: np.ndarray | None = None
        fusion_rows: list[dict[str, float]] = []
        for sl, a, b in _iter_batches(volume, batch_size):
            fused, labels, probs = predictor(a, b)
            assert labels is not None and probs is not None
            pred[sl] = labels.cpu().numpy()
            if scores is None:
                scores = np.zeros((pred.shape[0], probs.shape[1], *pred.shape[1:]), np.float32)
            scores[sl] = probs.cpu().numpy()
            for k in range(a.shape[0]):
                z = sl.start + k
                ak, bk = volume.a[z], volume.b[z]
                fk = fused[k, 0].cpu().numpy() if fused is not None else None
                # Fusion metrics on slices that hold anatomy; empty slices say nothing.
                if fk is not None and (ak.max() > 0 or bk.max() > 0):
                    fusion_rows.append(score_fusion(fk, ak, bk))
                mk = volume.mask[z] if volume.mask is not None else None
                if mk is not None and mk.any():
                    picker.offer(ak, bk, fk, mk, pred[z])
        # Class probabilities, not labels, go back to the source grid: interpolating
        # scores before the argmax gives smoother boundaries than nearest-neighbour labels.
        restored = volume.restore(scores) if volume.restore is not None else pred
        if volume.source_mask is not None:
            ref, spacing = volume.source_mask, tuple(volume.reference.spacing)
        else:
            ref, spacing = volume.mask, tuple(volume.spacing)
        row: dict[str, Any] = {"case_id": volume.case_id}
        if fusion_rows:
            keys = fusion_rows[0].keys()
            row.update({k: float(np.mean([r[k] for r in fusion_rows])) for k in keys})
        if ref is not None:
            row.update(
                score_segmentation_case(
                    restored, ref, spacing, regions, nsd_tolerance=nsd_tolerance
                )
            )
        rows.append(row)
        if save_predictions is not None:
            from benchbox.data.io import save_prediction

            path = save_predictions / f"{volume.case_id}.nii.gz"
            save_prediction(volume, restored.astype(np.uint8), path)
            saved.append(str(path))
    return rows, picker.chosen(), saved


class _ExamplePicker:
    """Keeps a few cases for the example figure: those with the largest labelled area
    (the most to see), then unlabelled ones in order of arrival."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ranked: list[tuple[int, int, dict[str, np.ndarray]]] = []
        self.others: list[dict[str, np.ndarray]] = []
        self._count = 0

    def offer(
        self,
        a: np.ndarray,
        b: np.ndarray,
        fused: np.ndarray | None,
        mask: np.ndarray | None,
        pred: np.ndarray | None,
    ) -> None:
        area = int(np.count_nonzero(mask)) if mask is not None else 0
        self._count += 1
        if area == 0 and len(self.others) >= self.n:
            return
        if area and len(self.ranked) >= self.n and area <= self.ranked[-1][0]:
            return
        item = {"a": np.array(a), "b": np.array(b)}
        for key, value in (("fused", fused), ("mask", mask), ("pred", pred)):
            if value is not None:
                item[key] = np.array(value)
        if area == 0:
            self.others.append(item)
            return
        self.ranked.append((area, -self._count, item))
        self.ranked.sort(key=lambda t: (t[0], t[1]), reverse=True)
        del self.ranked[self.n :]

    def chosen(self) -> list[dict[str, np.ndarray]]:
        return ([item for _, _, item in self.ranked] + self.others)[: self.n]
