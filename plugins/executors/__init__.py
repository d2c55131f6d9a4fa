"""Built-in sweep executors: ``local`` (a pool of worker processes on this machine) and
``ray`` (one Ray task per run, on a local or an existing Ray cluster)."""

from __future__ import annotations

from benchbox import hookimpl
from benchbox_plugins.executors.local import LocalExecutor
from benchbox_plugins.executors.ray import RayExecutor


@hookimpl
def register_executors(register):  # type: ignore[no-untyped-def]
    register("local", LocalExecutor)
    register("ray", RayExecutor)
