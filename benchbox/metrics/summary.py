"""The summary of a table of cases: each metric's mean and std, and the empty-mask counts.

:func:`summarize` builds a :class:`Summary` from per-case rows
(:mod:`benchbox.metrics.suite` scores them); :class:`Summary` is the one reader of its
key naming.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from benchbox.metrics.suite import EMPTY_FLAGS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Summary", "scalar_metrics", "summarize"]


def _flag_region(column: str) -> tuple[str, str] | None:
    for flag in EMPTY_FLAGS:
        if column.startswith(flag + "_"):
            return flag, column[len(flag) + 1 :]
    return None


class Summary(dict[str, float]):
    """The summary of a table of cases, as one flat mapping whose keys are leaderboard
    columns: ``n_cases``; for each metric column its mean under its name and its
    sample std under ``<column>_std``; for each region ``r`` the empty-mask counts
    ``n_ref_empty_<r>``, ``n_pred_empty_<r>``, ``n_both_empty_<r>``.

    This class is the one place that reads that naming: code asks it for the means,
    a column's std or the empty counts instead of decoding key suffixes. It is a
    ``dict``, so it is written to ``metrics.json`` and the leaderboard as it is; a
    summary read back from JSON is wrapped again with ``Summary(mapping)``.
    """

    STD = "_std"
    COUNT = "n_"

    def is_mean(self, key: str) -> bool:
        """Whether ``key`` is a metric column's mean (not a std, not a count)."""
        return not key.endswith(self.STD) and not key.startswith(self.COUNT)

    def means(self) -> dict[str, float]:
        """Each metric column's mean, in order."""
        return {k: float(v) for k, v in self.items() if v is not None and self.is_mean(k)}

    def std(self, column: str) -> float | None:
        """The sample standard deviation of a metric column, if summarised."""
        value = self.get(column + self.STD)
        return None if value is None else float(value)

    @property
    def n_cases(self) -> int:
        return int(self.get("n_cases", 0))

    def counts(self) -> dict[str, int]:
        """Every count (``n_cases`` and the empty-mask counts)."""
        return {k: int(v) for k, v in self.items() if k.startswith(self.COUNT)}

    def empty_counts(self) -> dict[str, dict[str, int]]:
        """``{region: {"ref": n, "pred": n, "both": n}}``: the cases whose reference,
        prediction, or both were empty, per region."""
        out: dict[str, dict[str, int]] = {}
        for kind in ("ref", "pred", "both"):
            prefix = f"{self.COUNT}{kind}_empty_"
            for key, value in self.items():
                if key.startswith(prefix):
                    out.setdefault(key[len(prefix) :], {})[kind] = int(value)
        return out


def scalar_metrics(summary: Mapping[str, float]) -> dict[str, float]:
    """The metric means of a run summary (no std columns, no counts): what a tracker
    logs as a run's test metrics."""
    return Summary(summary).means()


def summarize(per_case: pd.DataFrame) -> Summary:
    """The mean and standard deviation of every metric column, and the empty-mask counts.

    Args:
        per_case: one row per case, as built from :func:`score_fusion_case` or
            :func:`score_segmentation_case` results; non-numeric columns (a case id)
            are ignored.

    Returns:
        ``{"n_cases": n, "<column>": mean, "<column>_std": sample std (ddof 1; 0 for a
        single case), ...}`` and, for each region ``r`` with empty flags,
        ``n_ref_empty_<r>``, ``n_pred_empty_<r>`` and ``n_both_empty_<r>`` (cases where
        the reference, the prediction, or both were empty). Missing values (a column
        some cases lack) are skipped; a column with no value at all is left out, so no
        entry is NaN.
    """
    import pandas as pd

    numeric = per_case.select_dtypes(include="number")
    out = Summary({"n_cases": float(len(per_case))})
    regions: list[str] = []
    for column in numeric.columns:
        flag = _flag_region(str(column))
        if flag is not None:
            if flag[1] not in regions:
                regions.append(flag[1])
            continue
        values = pd.to_numeric(numeric[column], errors="coerce").dropna()
        values = values[np.isfinite(values)]
        if values.empty:
            continue
        out[str(column)] = float(values.mean())
        out[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    for region in regions:
        ref_col, pred_col = f"ref_empty_{region}", f"pred_empty_{region}"
        ref_empty = numeric[ref_col].fillna(0).astype(bool) if ref_col in numeric else None
        pred_empty = numeric[pred_col].fillna(0).astype(bool) if pred_col in numeric else None
        if ref_empty is not None:
            out[f"n_ref_empty_{region}"] = float(ref_empty.sum())
        if pred_empty is not None:
            out[f"n_pred_empty_{region}"] = float(pred_empty.sum())
        if ref_empty is not None and pred_empty is not None:
            out[f"n_both_empty_{region}"] = float((ref_empty & pred_empty).sum())
    return out
