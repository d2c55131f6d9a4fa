"""The contracts of what runs and watches runs: sweep executors and trackers
(``register_executors``, ``register_trackers`` in :mod:`benchbox.hookspecs`).

Both are checked for their shape, not run: an executor runs whole sweeps (and may
start a cluster), and a tracker writes to its backend, which may be a shared server.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pluggy

from benchbox import Entry, errors
from benchbox.hooks.guard import LIFECYCLE_HOOKS
from benchbox.hooks.manager import make_plugin_manager
from benchbox.hookspecs import PROJECT
from benchbox.testing.contracts._common import build
from benchbox.testing.result import ContractError

__all__ = ["check_executor", "check_tracker"]

_MARKER = f"{PROJECT}_impl"


def check_executor(entry: Entry) -> str:
    """``factory()`` returns an object with an ``int`` attribute ``slots`` (at least 1)
    and a method ``run(jobs, events, stop)``."""
    executor = build(entry)
    slots = getattr(executor, "slots", None)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise ContractError(f"slots={slots!r}; expected an int >= 1")
    run = getattr(executor, "run", None)
    if not callable(run):
        raise ContractError("it has no method run(jobs, events, stop)")
    try:
        inspect.signature(run).bind([], None, threading.Event())
    except TypeError as exc:
        raise ContractError(f"run(jobs, events, stop) cannot be called so: {exc}") from None
    except ValueError:
        pass  # a signature that cannot be read: nothing to check
    return "run(jobs, events, stop) is not called (it runs whole sweeps)"


def check_tracker(entry: Entry) -> str:
    """``factory()`` returns an object whose methods named after the run-lifecycle hooks
    (``run_started``, ``epoch_ended``, ``run_finished``) are decorated with
    :data:`benchbox.hookimpl` and take only the hooks' arguments; building it without its
    library is a :class:`benchbox.errors.ConfigError` (then it is skipped)."""
    tracker = build(entry)
    undecorated = [
        hook
        for hook in LIFECYCLE_HOOKS
        if callable(getattr(tracker, hook, None)) and not _is_hookimpl(tracker, hook)
    ]
    if undecorated:
        raise ContractError(
            f"method {', '.join(undecorated)} is not decorated with benchbox.hookimpl"
        )
    hooks = [name for name in dir(tracker) if _is_hookimpl(tracker, name)]
    if not set(hooks) & set(LIFECYCLE_HOOKS):
        raise ContractError(f"it implements none of the hooks {', '.join(LIFECYCLE_HOOKS)}")
    others = sorted(set(hooks) - set(LIFECYCLE_HOOKS))
    if others:
        raise ContractError(
            f"it implements {', '.join(others)}; a tracker implements run-lifecycle hooks only"
        )
    pm = make_plugin_manager()
    try:
        pm.register(tracker, name=f"tracker {entry.name}")
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ContractError(f"its hooks do not match benchbox's: {errors.describe(exc)}") from None
    finally:
        if pm.has_plugin(f"tracker {entry.name}"):
            pm.unregister(name=f"tracker {entry.name}")
    return "its hooks are not called (a tracker writes to its backend)"


def _is_hookimpl(obj: Any, name: str) -> bool:
    try:
        method = getattr(obj, name)
    except Exception:
        return False
    return callable(method) and getattr(method, _MARKER, None) is not None
