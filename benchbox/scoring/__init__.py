"""Scoring predictions against references: the one home of scoring in benchbox.

Both commands score through :mod:`benchbox.metrics.suite`, case by case, so a metric a
plugin registers gives the same column in every table:

* ``benchbox run`` (and validation, and ``benchbox export``'s checks):
  :func:`score_predictions` in :mod:`benchbox.scoring.split` scores a trained model's
  predictions of a dataset split (made by :mod:`benchbox.engine.inference`) against the
  split's labels and sources; 3D cases are scored in millimetres on the scan's own grid.
* ``benchbox evaluate``: :mod:`benchbox.scoring.folders` scores result files made by
  any tool, read from folders and matched by case name, and writes the tables.
"""

from __future__ import annotations

from benchbox.scoring.folders import (
    Scores,
    column_parts,
    metric_entry,
    score_fusion_folders,
    score_segmentation_folders,
    write_scores,
)
from benchbox.scoring.prediction import CasePrediction
from benchbox.scoring.split import SplitScores, score_case, score_predictions

__all__ = [
    "CasePrediction",
    "Scores",
    "SplitScores",
    "column_parts",
    "metric_entry",
    "score_case",
    "score_fusion_folders",
    "score_predictions",
    "score_segmentation_folders",
    "write_scores",
]
