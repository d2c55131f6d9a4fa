"""Calling hooks through pluggy with each plugin isolated from the others.

pluggy's hook caller runs the implementations (in ``tryfirst``/``trylast`` order, inside
the hook wrappers, under tracing and monitoring); :class:`PluginManager` only guards
each implementation so that one plugin's exception, or its half-finished registrations,
cannot affect another plugin. :mod:`benchbox.hooks.manager` loads the plugins and fills the
registry with this manager.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import pluggy

from benchbox import errors, hookspecs
from benchbox.hooks.registry import Entry, LoadError, Provider, Registry, make_entry

__all__ = ["LIFECYCLE_HOOKS", "Filling", "Observing", "PluginManager", "Registration"]

#: The run-lifecycle hooks: observers of a run implement them (see :mod:`benchbox.hooks.lifecycle`).
LIFECYCLE_HOOKS: tuple[str, ...] = ("run_started", "epoch_ended", "run_finished")


class Observing(Protocol):
    """What the guards consult while a run is observed
    (:class:`benchbox.hooks.lifecycle.Observers`)."""

    @property
    def failed(self) -> Mapping[str, str]:
        """The plugins that failed during this run, with why."""

    def fail(self, plugin: str, hook: str, exc: BaseException) -> None:
        """Report a plugin's first failure in a lifecycle hook and disable it for the run."""


class Filling:
    """One :meth:`PluginHost.fill`: who is registering now, and what each plugin staged.

    Registrations are staged per plugin and committed only for plugins none of whose
    hooks raised, so a plugin that fails halfway leaves nothing behind.
    """

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self.staged: dict[str, list[Entry]] = {}
        self.failed: dict[str, LoadError] = {}
        self._speaking: list[str] = []

    def provider(self, plugin_name: str) -> Provider:
        return self.providers.get(plugin_name, Provider(plugin_name))

    @contextmanager
    def speaking(self, plugin_name: str) -> Iterator[None]:
        """Attribute the ``register`` calls made inside this block to ``plugin_name``."""
        self._speaking.append(plugin_name)
        try:
            yield
        finally:
            self._speaking.pop()

    def stage(self, kind: str, name: str, factory: Any, description: Any, info: Any) -> None:
        if not self._speaking:
            raise errors.PluginError(
                f"register({name!r}) for {kind} was called outside a benchbox hook"
            )
        plugin = self._speaking[-1]
        entry = make_entry(kind, name, factory, self.provider(plugin), description, info)
        staged = self.staged.setdefault(plugin, [])
        if any(e.kind == kind and e.name == name for e in staged):
            raise errors.PluginError(f"plugin {entry.provider} registered {kind} {name!r} twice")
        staged.append(entry)

    def fail(self, plugin_name: str, exc: BaseException) -> None:
        if plugin_name not in self.failed:
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            provider = self.provider(plugin_name)
            self.failed[plugin_name] = LoadError(provider, errors.describe(exc), details)
        self.staged.pop(plugin_name, None)

    def commit(self, registry: Registry) -> None:
        for plugin, entries in self.staged.items():
            if plugin not in self.failed:
                for entry in entries:
                    registry.insert(entry)
        registry.load_errors.extend(self.failed.values())


class Registration:
    """The ``register`` callback handed to every implementation of one hook.

    pluggy passes the same keyword arguments to every implementation, so the callback
    cannot be made per plugin; the guard around each implementation (see
    :class:`PluginManager`) tells the filling which plugin is speaking instead.
    """

    def __init__(self, kind: str, filling: Filling) -> None:
        self.kind = kind
        self._filling = filling

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        description: str | None = None,
        **info: Any,
    ) -> None:
        self._filling.stage(self.kind, name, factory, description, info)

    def __repr__(self) -> str:
        return f"<benchbox register {self.kind}>"


class _StandIn:
    """What pluggy registers for a plugin: its guarded hook implementations."""

    def __init__(self, plugin: Any) -> None:
        self.__name__ = getattr(plugin, "__name__", type(plugin).__name__)

    def __repr__(self) -> str:
        return f"<benchbox plugin {self.__name__}>"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, with every hook implementation guarded while the registry fills.

    Why a guard per implementation: pluggy stops a hook call at the first exception, so
    one broken plugin would hide every plugin called after it, and the ``register``
    callback, shared by all implementations, cannot tell which plugin calls it. pluggy
    offers no per-implementation extension point (hook-call monitoring sees the whole
    call), so a plugin is registered as a stand-in object holding a guarded copy of each
    of its hook implementations (pluggy's public ``register``; its ``HookImpl`` objects
    are never written). While :attr:`filling` is set, the guard (1) attributes the
    ``register`` calls made inside it to its plugin and (2) turns an exception into that
    plugin's load error, so the other implementations still run and the failed plugin's
    staged registrations are dropped. Wrappers (``hookwrapper=True`` and
    ``wrapper=True``) are guarded around each part of their generator. Ordering,
    wrappers, tracing and monitoring are left to pluggy.

    The same guard isolates the observers of a run: while :attr:`observers` is set, an
    exception raised by a (non-wrapper) implementation of a lifecycle hook is that
    plugin's failure, reported once through :meth:`Observing.fail`, and the plugin is
    not called again for the rest of the run. Outside a filling and a run the guard
    calls straight through.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.filling: Filling | None = None
        self._originals: dict[int, Any] = {}
        #: The observers of the run in progress (see :mod:`benchbox.hooks.lifecycle`), if any.
        self.observers: Observing | None = None

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin`` through pluggy's public ``register``, as a stand-in that
        holds a guarded copy of each of its hook implementations (same markers, same
        signatures); pluggy's ``HookImpl`` objects are never touched. The manager
        remembers the plugin behind each stand-in (:meth:`original`)."""
        name = name or self.get_canonical_name(plugin)
        stand_in = _StandIn(plugin)
        for attr in dir(plugin):
            try:
                opts = self.parse_hookimpl_opts(plugin, attr)
            except Exception:  # an attribute that raises on access is no hook
                continue
            if opts is None:
                continue
            function = getattr(plugin, attr)
            hook = opts.get("specname") or attr
            guarded = self._guard(name, function, hook, opts)
            setattr(guarded, f"{self.project_name}_impl", opts)
            setattr(stand_in, attr, guarded)
        plugin_name = super().register(stand_in, name)
        if plugin_name is not None:
            self._originals[id(stand_in)] = plugin
        return plugin_name

    def original(self, plugin: Any) -> Any:
        """The object a user registered, for a stand-in pluggy reports (in a
        ``PluginValidationError``, ``get_plugins``...)."""
        return self._originals.get(id(plugin), plugin)

    def _guard(
        self, name: str, function: Callable[..., Any], hook: str, opts: Mapping[str, Any]
    ) -> Callable[..., Any]:
        if opts.get("hookwrapper"):
            return functools.wraps(function)(_guard_old_wrapper(self, name, function))
        if opts.get("wrapper"):
            return functools.wraps(function)(_guard_wrapper(self, name, function))
        observed = hook in LIFECYCLE_HOOKS

        def guarded(*args: Any) -> Any:
            filling = self.filling
            if filling is not None:
                if name in filling.failed:
                    return None
                with filling.speaking(name):
                    return _shielded(function, args, lambda exc: filling.fail(name, exc))
            observers = self.observers
            if observers is None or not observed:
                return function(*args)
            if name in observers.failed:
                return None
            return _shielded(function, args, lambda exc: observers.fail(name, hook, exc))

        return functools.wraps(function)(guarded)


def _shielded(
    function: Callable[..., Any], args: tuple[Any, ...], fail: Callable[[Exception], None]
) -> Any:
    """``function(*args)``, or ``None`` after handing its exception to ``fail``."""
    try:
        return function(*args)
    except Exception as exc:
        fail(exc)
        return None


def _advance(filling: Filling, name: str, step: Callable[[], Any]) -> tuple[str, Any]:
    """Run one part of plugin ``name``'s wrapper generator (``next`` or ``send``).

    Returns ``("yielded", None)``, ``("returned", value)`` when the generator returned
    ``value``, or ``("failed", None)`` when it raised: the plugin's failure.
    """
    with filling.speaking(name):
        try:
            step()
        except StopIteration as stop:
            return "returned", stop.value
        except Exception as exc:
            filling.fail(name, exc)
            return "failed", None
    return "yielded", None


def _start(filling: Filling, name: str, gen: Generator[Any, Any, Any]) -> bool:
    """Run a wrapper up to its ``yield``; whether it got there (else it failed)."""
    state, _ = _advance(filling, name, lambda: next(gen))
    if state == "returned":
        filling.fail(name, RuntimeError("the hook wrapper did not yield"))
    return state == "yielded"


def _guard_wrapper(
    pm: PluginManager, name: str, function: Callable[..., Any]
) -> Callable[..., Any]:
    """Guard a new-style wrapper: ``result = yield`` gets the result (or raises)."""

    def guarded(*args: Any) -> Generator[None, Any, Any]:
        filling = pm.filling
        if filling is None:
            return (yield from function(*args))
        if name in filling.failed:
            return (yield)
        gen = function(*args)
        if not _start(filling, name, gen):
            return (yield)
        try:
            result = yield
        except Exception as exc:  # raised by another wrapper; the guards never raise
            with filling.speaking(name):
                try:
                    gen.throw(exc)
                except StopIteration as stop:
                    return stop.value
            raise
        state, value = _advance(filling, name, lambda: gen.send(result))
        if state != "yielded":
            return value if state == "returned" else result
        gen.close()
        filling.fail(name, RuntimeError("the hook wrapper yielded twice"))
        return result

    return guarded


def _guard_old_wrapper(
    pm: PluginManager, name: str, function: Callable[..., Any]
) -> Callable[..., Any]:
    """Guard an old-style ``hookwrapper``: ``outcome = yield`` gets a ``pluggy.Result``."""

    def guarded(*args: Any) -> Generator[None, Any, None]:
        filling = pm.filling
        if filling is None:
            yield from function(*args)
            return
        if name in filling.failed:
            yield
            return
        gen = function(*args)
        if not _start(filling, name, gen):
            yield
            return
        outcome = yield
        state, _ = _advance(filling, name, lambda: gen.send(outcome))
        if state == "yielded":
            gen.close()
            filling.fail(name, RuntimeError("the hook wrapper yielded twice"))

    return guarded
