"""Built-in experiment trackers: TensorBoard and MLflow, each an optional extra.

Each tracker is a run-lifecycle plugin (see :mod:`benchbox.hookspecs`) built for one run
with ``--tracker NAME``. Their libraries are imported only when a run enables them.
"""

from __future__ import annotations

from benchbox import hookimpl
from benchbox_plugins.trackers.mlflow_tracker import mlflow_tracker
from benchbox_plugins.trackers.tensorboard_tracker import tensorboard_tracker


@hookimpl
def register_trackers(register):  # type: ignore[no-untyped-def]
    register("tensorboard", tensorboard_tracker, extra="tensorboard")
    register("mlflow", mlflow_tracker, extra="mlflow")
