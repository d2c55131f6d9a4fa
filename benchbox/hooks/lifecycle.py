"""Telling observers about a run: the lifecycle hooks, called through pluggy.

Observers are the installed plugins that implement ``run_started``, ``epoch_ended`` or
``run_finished`` (see :mod:`benchbox.hookspecs`), and the trackers a run enables with
``--tracker NAME``: each tracker object is registered on the plugin manager as a plugin
for the duration of the run, so it hears the same hook calls in pluggy's order.

An observer never costs a run: while a run is observed, the guard that
:class:`benchbox.hooks.guard.PluginManager` puts around every hook implementation catches
the first exception of a lifecycle implementation, reports it once as a warning naming
the plugin, and skips that plugin for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchbox.hooks.guard import LIFECYCLE_HOOKS, PluginManager

__all__ = ["Observers", "flat_params"]


@dataclass
class Observers:
    """The observers of one run, each isolated from the run and from the others.

    Args:
        pm: the plugin manager of the process (installed observers); ``None`` for a
            fresh one that holds only the trackers.
        trackers: the run's tracker objects by name, registered for the run only.
        warn: receives the one-line warning about an observer that failed.
    """

    pm: PluginManager | None = None
    trackers: Mapping[str, Any] = field(default_factory=dict)
    warn: Callable[[str], None] = print
    failed: dict[str, str] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)
    _outer: Any = None

    def __enter__(self) -> Observers:
        if self.pm is None:
            self.pm = PluginManager()
        for name, tracker in self.trackers.items():
            self._names.append(self.pm.register(tracker, name=f"tracker {name}") or "")
        self._outer = self.pm.observers
        self.pm.observers = self
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.pm is not None
        self.pm.observers = self._outer
        for name in self._names:
            if name and self.pm.has_plugin(name):
                self.pm.unregister(name=name)
        self._names.clear()

    def call(self, hook: str, **kwargs: Any) -> None:
        """Call lifecycle ``hook`` through pluggy's hook caller; never raises."""
        assert self.pm is not None and hook in LIFECYCLE_HOOKS
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:  # a hook wrapper failed: the guards cover the rest
            self.fail(f"a hook wrapper of {hook}", hook, exc)

    def fail(self, plugin: str, hook: str, exc: BaseException) -> None:
        """Report an observer's first failure and disable it for this run."""
        if plugin in self.failed:
            return
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        self.failed[plugin] = f"{hook}: {message}"
        self.warn(
            f"observer {plugin!r} failed in {hook} ({message}); it is disabled for the rest "
            "of this run, which goes on"
        )


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A run config as flat ``{"seg_opts.width": 16}`` scalars for a tracker's params:
    nested tables joined by dots, lists as comma-joined text, ``None`` left out."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        elif value is not None:
            out[name] = value
    return out
