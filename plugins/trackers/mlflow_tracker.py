"""The ``mlflow`` tracker (``pip install "benchbox[mlflow]"``).

One MLflow run per benchbox run: the resolved config as params, ``<stage>/train_loss``
and ``<stage>/val_<metric>`` per epoch (step = epoch), ``test/<metric>`` and
``selection/epoch`` at the end, the run's files as artifacts (config, metrics.json,
per_case.csv, examples.png, checkpoint), and the status (FINISHED, FAILED or KILLED).

The tracking store is ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI``, else an
SQLite database ``<out>/mlflow/mlflow.db`` beside ``runs/`` in the output folder, with the
artifacts in ``<out>/mlflow/artifacts/``; open it with
``mlflow ui --backend-store-uri sqlite:///<out>/mlflow/mlflow.db``. The experiment is
``experiment``, else ``MLFLOW_EXPERIMENT_NAME``, else ``benchbox``.

A store given explicitly is opened when the tracker is built, before training, with a
short timeout (:data:`PROBE_TIMEOUT`): one that does not answer, or that MLflow refuses
(MLflow 3 refuses its old file store, ``file:./mlruns``, unless
``MLFLOW_ALLOW_FILE_STORE=true``), stops the run there with one line naming the fix.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchbox import ConfigError, RunInfo, flat_params, hookimpl, scalar_metrics

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_ARTIFACTS = ("config", "environment", "metrics", "per_case", "examples", "checkpoint")

#: The folder of the default store, inside the run's output folder (``--out``).
DEFAULT_FOLDER = "mlflow"
#: Seconds an explicitly given tracking store has to answer before training starts.
PROBE_TIMEOUT = 5
# MLflow's and alembic's INFO lines while an SQLite store creates its tables.
_SETUP_LOGGERS = ("mlflow.store.db.utils", "alembic")


def default_store(out: Path) -> tuple[str, str]:
    """The tracking URI and artifact location of the default store under ``out``."""
    folder = (out / DEFAULT_FOLDER).resolve()
    return f"sqlite:///{(folder / 'mlflow.db').as_posix()}", (folder / "artifacts").as_uri()


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
        self._source = "tracking_uri" if tracking_uri else "MLFLOW_TRACKING_URI"
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "benchbox"
        self.client: Any = None
        self.run_id: str | None = None
        if self.tracking_uri is not None:
            self.client = self._probe(self.tracking_uri)

    def _open(self, uri: str) -> Any:
        """A client whose store is created and answers (one cheap search)."""
        with ExitStack() as stack:
            stack.enter_context(_store_lock(uri))
            stack.enter_context(_quiet(_SETUP_LOGGERS))
            if uri.startswith(("http:", "https:")):
                stack.enter_context(_fail_fast(PROBE_TIMEOUT))
            client = self._client_class(tracking_uri=uri)
            client.search_experiments(max_results=1)
        return client

    def _probe(self, uri: str) -> Any:
        """Open the explicitly given store, or raise one ConfigError line naming the fix."""
        where = f"{self._source}={uri}"
        unset = f"or unset {self._source} to log to {DEFAULT_FOLDER}/mlflow.db in the output folder"
        try:
            return self._open(uri)
        except Exception as exc:
            text = str(exc)
            if "MLFLOW_ALLOW_FILE_STORE" in text:
                version = getattr(sys.modules.get("mlflow"), "__version__", "")
                raise ConfigError(
                    f"tracker 'mlflow': {where} is a file store, which MLflow {version} refuses; "
                    f"use a database store such as sqlite:///mlflow.db, "
                    f"set MLFLOW_ALLOW_FILE_STORE=true, {unset}"
                ) from None
            raise ConfigError(
                f"tracker 'mlflow' cannot use {where} ({_reason(exc)}); "
                f"start or fix that tracking store, {unset}"
            ) from None

    @hookimpl
    def run_started(self, run: RunInfo) -> None:
        artifacts = None
        if self.client is None:
            self.tracking_uri, artifacts = default_store(run.run_dir.parent.parent)
            self.client = self._open(self.tracking_uri)
        assert self.tracking_uri is not None
        with _store_lock(self.tracking_uri):  # two runs of a sweep must not both create it
            found = self.client.get_experiment_by_name(self.experiment)
            experiment_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(self.experiment, artifact_location=artifacts)
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


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold a lock file beside a local SQLite store.

    Processes that create the same new database at once (the runs of a sweep) break
    MLflow's table creation ("duplicate column name"), and two that create the same
    experiment break on its unique name.
    """
    path = uri[len("sqlite:///") :].split("?")[0] if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        yield
        return
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        yield


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Raise ``names``' loggers to WARNING for the block, then restore their levels."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _fail_fast(timeout: int) -> Iterator[None]:
    """MLflow's HTTP requests without retries and with ``timeout`` for the block.

    By default MLflow retries a request 7 times with back-off and waits 120 s for each,
    so an unreachable server stalls the run start for minutes without a word.
    """
    values = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reason(exc: BaseException) -> str:
    """A short reason for a failed store probe: a timeout, an OS error, or the first line."""
    text = str(exc)
    if re.search(r"timed? ?out", text, re.IGNORECASE):
        return f"no answer within {PROBE_TIMEOUT} s"
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".")
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return first if len(first) <= 200 else f"{first[:197]}..."
