"""Scoring a model's predictions of a dataset split (``benchbox run``, validation, export).

:func:`score_predictions` scores the cases a model predicted
(:class:`benchbox.scoring.prediction.CasePrediction`), one by one through
:mod:`benchbox.metrics.suite`: 2D cases as they are, 3D cases in millimetres on the
scan's own grid. Running the models is the engine's job
(:func:`benchbox.engine.inference.score_split` predicts and calls this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.metrics.failures import MetricFailures
from benchbox.metrics.segmentation import DEFAULT_NSD_TOLERANCE
from benchbox.metrics.suite import (
    fusion_metrics_for_shape,
    score_fusion_case,
    score_segmentation_case,
)
from benchbox.metrics.summary import Summary, summarize

if TYPE_CHECKING:
    import pandas as pd

    from benchbox.hooks.registry import Entry
    from benchbox.scoring.prediction import CasePrediction

__all__ = ["SplitScores", "score_case", "score_predictions"]


@dataclass
class SplitScores:
    """The scores of a model on a dataset split, with what ``benchbox run`` records.

    Attributes:
        per_case: one row per case: ``case_id`` then the metric columns.
        summary: :func:`benchbox.metrics.summary.summarize` of ``per_case``.
        infer_images: images predicted in timed forward passes.
        infer_seconds: the time those passes took.
        examples: a few cases for the example figure (see
            :class:`benchbox.scoring.examples.ExamplePicker`).
        saved_predictions: the prediction files written (3D cases only).
        notes: what was left out and why (metrics too large for the images).
    """

    per_case: pd.DataFrame
    summary: Summary
    infer_images: int = 0
    infer_seconds: float = 0.0
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)
    saved_predictions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def infer_images_per_s(self) -> float:
        return self.infer_images / self.infer_seconds if self.infer_seconds > 0 else 0.0


class _FusionScorer:
    """Scores fused images with the fusion metrics that fit their size, chosen once."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.metrics: list[Entry] | None = None
        self.left_out: list[str] = []
        #: Shared by every metric call of one split: a metric that raises is left out.
        self.failures = MetricFailures()

    def __call__(self, fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        if not self.enabled:
            return {}
        if self.metrics is None:
            self.metrics, too_small = fusion_metrics_for_shape(fused.shape)
            self.left_out = [
                f"{e.name} needs images of at least {e.info['min_size']} px" for e in too_small
            ]
        return score_fusion_case(
            fused.astype(np.float64),
            a.astype(np.float64),
            b.astype(np.float64),
            self.metrics,
            failures=self.failures,
        )


def score_case(
    case: CasePrediction,
    regions: Mapping[str, Iterable[int]],
    score_fusion: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]],
    nsd_tolerance: float = DEFAULT_NSD_TOLERANCE,
    failures: MetricFailures | None = None,
) -> dict[str, Any]:
    """One per-case row of a model's prediction.

    A 2D case is scored as it is. A 3D case gets the mean fusion metrics of its slices
    that hold anatomy (empty slices say nothing about fusion) and its segmentation
    metrics in 3D on the source grid (``restored`` against ``reference``). With
    ``failures``, a segmentation metric that raises is left out (see
    :class:`benchbox.metrics.failures.MetricFailures`).
    """
    row: dict[str, Any] = {"case_id": case.case_id}
    if case.fused is not None:
        if case.volume is None:
            row.update(score_fusion(case.fused, case.a, case.b))
        else:
            slices = [
                score_fusion(case.fused[z], case.a[z], case.b[z])
                for z in range(case.a.shape[0])
                if case.a[z].max() > 0 or case.b[z].max() > 0
            ]
            if slices:
                # the last slice's keys: a metric that failed midway is in none of them
                row.update({k: float(np.mean([r[k] for r in slices])) for k in slices[-1]})
    if case.restored is not None and case.reference is not None:
        row.update(
            score_segmentation_case(
                case.restored,
                case.reference,
                case.reference_spacing,
                regions,
                nsd_tolerance=nsd_tolerance,
                failures=failures,
            )
        )
    return row


def score_predictions(
    cases: Iterable[CasePrediction],
    regions: Mapping[str, Iterable[int]],
    *,
    nsd_tolerance: float = DEFAULT_NSD_TOLERANCE,
    examples: int = 4,
    save_predictions: Path | None = None,
    fusion_metrics: bool = True,
    postprocess: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SplitScores:
    """Score each predicted case with the metrics that apply, in order.

    Args:
        cases: the predictions of a split (:func:`benchbox.engine.inference.predict_split`).
        regions: the scored regions (``dataset.eval_regions()``).
        nsd_tolerance: NSD tolerance in mm.
        examples: cases kept for the example figure.
        save_predictions: a folder for each 3D case's prediction as NIfTI with the
            scan's geometry; ``None`` writes nothing.
        fusion_metrics: score fused images; validation of a segmentation run turns
            this off, since only segmentation metrics select its checkpoint.
        postprocess: applied to each case's predicted labels (on the source grid)
            before they are scored and saved (:mod:`benchbox.engine.postprocess`).

    The inference timing of the returned scores is left at zero: the caller that ran
    the models fills it in.
    """
    from benchbox.data.io import save_prediction
    from benchbox.scoring.examples import ExamplePicker

    score_fusion = _FusionScorer(enabled=fusion_metrics)
    picker = ExamplePicker(examples)
    rows: list[dict[str, Any]] = []
    saved: list[str] = []
    for case in cases:
        case.postprocess(postprocess)
        rows.append(score_case(case, regions, score_fusion, nsd_tolerance, score_fusion.failures))
        if case.volume is None:
            picker.offer(case.a, case.b, case.fused, case.mask, case.labels)
        elif case.mask is not None and case.labels is not None:
            for z in range(case.a.shape[0]):
                if case.mask[z].any():
                    fused = None if case.fused is None else case.fused[z]
                    picker.offer(case.a[z], case.b[z], fused, case.mask[z], case.labels[z])
        if save_predictions is not None and case.volume is not None:
            assert case.restored is not None
            path = save_predictions / f"{case.case_id}.nii.gz"
            save_prediction(case.volume, case.restored.astype(np.uint8), path)
            saved.append(str(path))
    import pandas as pd

    per_case = score_fusion.failures.drop(pd.DataFrame(rows))
    return SplitScores(
        per_case=per_case,
        summary=summarize(per_case),
        examples=picker.chosen(),
        saved_predictions=saved,
        notes=[f"left out {note}" for note in score_fusion.left_out]
        + score_fusion.failures.notes(),
    )
