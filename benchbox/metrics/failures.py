"""Metrics that raise while a run is scored: reported by name and left out, not fatal.

A metric is plugin code like a model; one broken third-party metric must not throw
away a finished training. The scorer functions of :mod:`benchbox.metrics.suite` take a
:class:`MetricFailures` shared by every case of one evaluation.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from benchbox.errors import PluginWarning, describe

if TYPE_CHECKING:
    import pandas as pd

    from benchbox.hooks.registry import Entry

__all__ = ["MetricFailures"]


class MetricFailures:
    """The metrics that failed during one evaluation, and the columns each produced.

    A metric that raises (or returns a value that is not a finite number) is recorded
    with its error, warned about once (:class:`~benchbox.errors.PluginWarning`) and not
    called again; :meth:`drop` then removes the columns it produced for the cases it
    did score, so no summary mixes the cases a metric scored with those it could not.
    """

    def __init__(self) -> None:
        #: ``{metric name: one-line reason}``, in the order the failures happened.
        self.errors: dict[str, str] = {}
        self._columns: dict[str, set[str]] = {}

    def __contains__(self, entry: Entry) -> bool:
        return entry.name in self.errors

    def scored(self, entry: Entry, columns: set[str]) -> None:
        """Remember the columns a metric produced (to drop them if it fails later)."""
        self._columns.setdefault(entry.name, set()).update(columns)

    def failed(self, entry: Entry, exc: BaseException) -> None:
        """Record a failed metric and warn once."""
        if entry.name in self.errors:
            return
        reason = describe(exc, entry.package)
        self.errors[entry.name] = (
            f"left out metric {entry.name!r} of plugin {entry.provider}: it raised {reason}"
        )
        warnings.warn(self.errors[entry.name], PluginWarning, stacklevel=3)

    def drop(self, per_case: pd.DataFrame) -> pd.DataFrame:
        """``per_case`` without any column of a failed metric."""
        columns = {c for name in self.errors for c in self._columns.get(name, ())}
        return per_case.drop(columns=[c for c in per_case.columns if c in columns])

    def notes(self) -> list[str]:
        """One line per failed metric, for the run's record."""
        return list(self.errors.values())
