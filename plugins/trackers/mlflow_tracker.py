"""The ``mlflow`` tracker (``pip install "benchbox[mlflow]"``).

One MLflow run per benchbox run: the resolved config as params, ``<stage>/train_loss``
and ``<stage>/val_<metric>`` per epoch (step = epoch), ``test/<metric>`` and
``selection/epoch`` at the end, the run's files as artifacts (config, metrics.json,
per_case.csv, examples.png, checkpoint), and the status (FINISHED, FAILED or KILLED).

The tracking URI is ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI``, else a
local file store ``mlruns/`` next to ``runs/`` in the output folder; the experiment is
``experiment``, else ``MLFLOW_EXPERIMENT_NAME``, else ``benchbox``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchbox import ConfigError, RunInfo, flat_params, hookimpl, scalar_metrics

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_ARTIFACTS = ("config", "environment", "metrics", "per_case", "examples", "checkpoint")


class MlflowTracker:
    """Logs one run to MLflow through ``MlflowClient`` (no global active run is set)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError(
                "tracker 'mlflow' needs the mlflow package: pip install \"benchbox[mlflow]\""
            ) from None
        self._client_class, self._metric, self._param = MlflowClient, Metric, Param
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "benchbox"
        self.client: Any = None
        self.run_id: str | None = None

    @hookimpl
    def run_started(self, run: RunInfo) -> None:
        uri = self.tracking_uri or (run.run_dir.parent.parent / "mlruns").resolve().as_uri()
        self.client = self._client_class(tracking_uri=uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found else self.client.create_experiment(self.experiment)
        )
        tags = {"benchbox.run_id": run.run_id, "benchbox.config_hash": run.config_hash}
        self.run_id = self.client.create_run(
            experiment_id, run_name=run.run_id, tags=tags
        ).info.run_id
        params = [self._param(k, str(v)[:6000]) for k, v in flat_params(run.config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def _log(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(k, float(v), now, step) for k, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    @hookimpl
    def epoch_ended(
        self,
        run: RunInfo,
        stage: str,
        epoch: int,
        train_loss: float,
        val_metrics: dict[str, float],
    ) -> None:
        values = {f"{stage}/train_loss": train_loss}
        values.update({f"{stage}/val_{k}": v for k, v in val_metrics.items()})
        self._log(values, epoch)

    @hookimpl
    def run_finished(
        self,
        run: RunInfo,
        status: str,
        summary: dict[str, float],
        record: dict[str, Any],
        files: dict[str, Path],
        error: str | None,
    ) -> None:
        if self.run_id is None:
            return
        values = {f"test/{k}": v for k, v in scalar_metrics(summary).items()}
        selection = record.get("selection") or {}
        if selection.get("epoch") is not None:
            values["selection/epoch"] = float(selection["epoch"])
        self._log(values, 0)
        if error:
            self.client.set_tag(self.run_id, "benchbox.error", error[:5000])
        for name in _ARTIFACTS:
            if name in files:
                self.client.log_artifact(self.run_id, str(files[name]))
        self.client.set_terminated(self.run_id, _STATUS.get(status, "FAILED"))


def mlflow_tracker(tracking_uri: str | None = None, experiment: str | None = None) -> MlflowTracker:
    """MLflow: params, per-epoch metrics, test metrics and the run's files as artifacts"""
    return MlflowTracker(tracking_uri, experiment)
