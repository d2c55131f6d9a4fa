"""The one plugin manager: loads the ``benchbox`` entry points and fills the registry.

Built-in components are declared in benchbox's own ``pyproject.toml`` under the same
entry-point group as third-party packages, so both take exactly this path.

Hooks are called through pluggy's hook caller (``pm.hook.register_fusions(register=...)``),
so ``tryfirst``/``trylast``, hook wrappers (old and new style) and hook-call tracing
(``pm.enable_tracing()``, ``pm.add_hookcall_monitoring``) behave as pluggy documents.
What benchbox adds is isolation, see :class:`PluginManager`.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pluggy

from benchbox import errors
from benchbox.hooks.guard import Filling, PluginManager, Registration
from benchbox.hooks.registry import HOOKS, KINDS, LoadError, Provider, Registry, duplicate_error

__all__ = [
    "DEBUG_ENV",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "PluginHost",
    "create_registry",
    "debug_enabled",
    "get_registry",
    "iter_entry_points",
    "make_plugin_manager",
    "set_registry",
    "use_registry",
]

ENTRY_POINT_GROUP = "benchbox"
#: Comma-separated distribution names (or ``dist:entry-point``) allowed to load; unset
#: loads every installed plugin, an empty value loads none.
ENV_VAR = "BENCHBOX_PLUGINS"
#: Comma-separated plugins not to load: distribution names, ``dist:entry-point`` names,
#: or the name of an in-process plugin. ``benchbox --disable NAME`` adds to it.
DISABLE_ENV = "BENCHBOX_DISABLE"
#: Any value but empty, ``0``, ``false`` or ``no`` shows tracebacks of plugin errors and
#: traces every hook call on stderr. ``benchbox --debug`` sets it.
DEBUG_ENV = "BENCHBOX_DEBUG"


def debug_enabled() -> bool:
    """Whether ``BENCHBOX_DEBUG`` asks for tracebacks and hook-call tracing."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(value: str | None) -> list[str] | None:
    """The normalised names of a comma-separated list; ``None`` when unset."""
    if value is None:
        return None
    return [_normalise(part.strip()) for part in value.split(",") if part.strip()]


def _keys(provider: Provider) -> set[str]:
    """The names a user may give for a plugin: its distribution, ``dist:entry-point``."""
    if provider.distribution is None:
        return {_normalise(provider.plugin)}
    dist = _normalise(provider.distribution)
    entry_point = provider.plugin.split(":", 1)[-1]
    return {dist, f"{dist}:{_normalise(entry_point)}"}


def iter_entry_points(group: str = ENTRY_POINT_GROUP) -> Iterator[tuple[md.EntryPoint, Provider]]:
    """Every entry point of ``group`` with its provider, each distribution once."""
    seen: set[str] = set()
    for dist in md.distributions():
        dist_name = dist.metadata["Name"] or "?"
        key = _normalise(dist_name)
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group == group:
                yield ep, Provider(f"{dist_name}:{ep.name}", dist_name, dist.version)


def make_plugin_manager() -> PluginManager:
    """A fresh manager with benchbox's hook specifications and no plugin."""
    return PluginManager()


class PluginHost:
    """A plugin manager, where each plugin came from, and what failed or was disabled.

    Args:
        disable: names of plugins not to load (see :data:`DISABLE_ENV`); by default
            read from ``BENCHBOX_DISABLE``.
    """

    def __init__(self, disable: Iterable[str] | None = None) -> None:
        self.pm = make_plugin_manager()
        self.providers: dict[str, Provider] = {}
        self.load_errors: list[LoadError] = []
        self.disabled: list[Provider] = []
        self.warnings: list[str] = []
        if disable is None:
            self._disable = set(_names(os.environ.get(DISABLE_ENV)) or ())
        else:
            self._disable = {_normalise(n) for n in disable}
        self._known: dict[str, Provider] = {}

    def register(self, plugin: Any, provider: Provider) -> None:
        """Register one plugin object, unless disabled; an invalid hook is a load error."""
        self._known.update(dict.fromkeys(_keys(provider), provider))
        if _keys(provider) & self._disable:
            self.pm.set_blocked(provider.plugin)
            self.disabled.append(provider)
            return
        try:
            self.pm.register(plugin, name=provider.plugin)
        except pluggy.PluginValidationError as exc:
            if self.pm.has_plugin(provider.plugin):  # pluggy may leave it half registered
                self.pm.unregister(name=provider.plugin)
            self.load_errors.append(LoadError(provider, errors.describe(exc)))
            return
        self.providers[provider.plugin] = provider

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP, env: str | None = None) -> None:
        """Import every allowed entry point of ``group``; import failures are recorded.

        Unlike ``PluginManager.load_setuptools_entrypoints``, one plugin that fails to
        import does not stop the others from loading. ``env`` is the allow-list (the
        ``BENCHBOX_PLUGINS`` value); a name in it that matches no installed plugin is a
        warning listing the installed ones.
        """
        allowed = _names(env)
        found = list(iter_entry_points(group))
        for _, provider in found:
            self._known.update(dict.fromkeys(_keys(provider), provider))
        if allowed is not None:
            self._warn_unknown(ENV_VAR, allowed)
        for ep, provider in found:
            if allowed is not None and not _keys(provider) & set(allowed):
                continue
            if _keys(provider) & self._disable:
                self.register(None, provider)  # recorded as disabled, never imported
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.load_errors.append(LoadError(provider, errors.describe(exc), details))
                continue
            self.register(plugin, provider)

    def _warn_unknown(self, source: str, names: Iterable[str]) -> None:
        """A warning for each name that matches no plugin known to this host.

        A warning, not an error: an allow- or disable-list only removes plugins, so a
        stale or misspelled name cannot make a run use the wrong component; but the
        plugin meant is not what the user thinks, so it must not pass silently.
        ``--strict`` turns it into an error.
        """
        known = sorted(self._known)
        dists = sorted({p.distribution or p.plugin for p in self._known.values()}, key=str.lower)
        for name in names:
            if name in self._known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.warnings.append(
                f"{source} names {name!r}, which is no installed benchbox plugin; {hint}"
                f"installed: {', '.join(dists) or 'none'}"
            )

    def check_pending(self) -> None:
        """Catch misspelled hooks (``register_fusion``): the plugin becomes a load error."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                provider = self.providers.pop(name, Provider(name))
                unknown = sorted(
                    hook
                    for hook, caller in vars(self.pm.hook).items()
                    if not hook.startswith("_")
                    and not caller.has_spec()
                    and any(i.plugin is exc.plugin for i in caller.get_hookimpls())
                )
                hints = [
                    f"{hook!r} (did you mean {close[0]!r}?)" if close else repr(hook)
                    for hook in unknown
                    for close in [difflib.get_close_matches(hook, list(HOOKS.values()), n=1)]
                ]
                self.load_errors.append(
                    LoadError(provider, f"unknown hook {', '.join(hints)}; not a benchbox hook")
                )
                self.pm.unregister(exc.plugin)

    def fill(self, registry: Registry) -> Registry:
        """Call each ``register_*`` hook once through pluggy and commit what succeeded.

        Every plugin's registrations are staged and committed only if none of its hooks
        raised; a plugin that failed is a load error and leaves nothing behind.
        """
        registry.load_errors.extend(self.load_errors)
        registry.disabled.extend(self.disabled)
        registry.warnings.extend(self.warnings)
        filling = Filling(self.providers)
        self.pm.filling = filling
        try:
            for kind in KINDS:
                getattr(self.pm.hook, HOOKS[kind])(register=Registration(kind, filling))
        finally:
            self.pm.filling = None
        filling.commit(registry)
        return registry


def create_registry(
    plugins: Iterable[Any] = (),
    *,
    entry_points: bool = True,
    strict: bool = False,
    env: str | object | None = ...,
    disable: Iterable[str] | None = None,
) -> Registry:
    """Load plugins and return a filled registry.

    Args:
        plugins: extra plugin objects registered in-process (tests, notebooks), each
            with an optional ``__name__``.
        entry_points: load the installed ``benchbox`` entry points.
        strict: raise :class:`PluginError` if any plugin failed to load, two plugins
            registered one name, or a name in ``BENCHBOX_PLUGINS`` or
            ``BENCHBOX_DISABLE`` matches no plugin.
        env: the ``BENCHBOX_PLUGINS`` value; by default read from the environment.
        disable: plugins not to load; by default ``BENCHBOX_DISABLE``.
    """
    host = PluginHost(disable)
    if debug_enabled():
        # pluggy's trace names each hook call; plugin authors also want to see which
        # implementations run, in pluggy's call order (tryfirst ... trylast).
        def called(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Any) -> None:
            order = ", ".join(i.plugin_name for i in reversed(impls))
            sys.stderr.write(f"      called in order: {order}\n")

        host.pm.add_hookcall_monitoring(called, lambda *args: None)
        host.pm.trace.root.setwriter(sys.stderr.write)
        host.pm.enable_tracing()
    if entry_points:
        host.load_entry_points(env=os.environ.get(ENV_VAR) if env is ... else env)  # type: ignore[arg-type]
    for plugin in plugins:
        host.register(plugin, Provider(getattr(plugin, "__name__", repr(plugin))))
    host._warn_unknown(DISABLE_ENV, sorted(host._disable))
    host.check_pending()
    registry = host.fill(Registry())
    registry.plugin_manager = host.pm
    problems = [f"plugin {e.provider} failed to load: {e.error}" for e in registry.load_errors]
    problems += registry.warnings
    problems += [str(duplicate_error(entries)) for entries in registry.duplicates()]
    if strict and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise errors.PluginError(problems[0] + more)
    for message in registry.warnings:
        warnings.warn(message, errors.PluginWarning, stacklevel=2)
    return registry


_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from the installed plugins on first use."""
    global _current
    if _current is None:
        _current = create_registry()
    return _current


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (``None`` reloads it on next use)."""
    global _current
    _current = registry


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Temporarily make ``registry`` the process-wide one (for tests and notebooks)."""
    global _current
    previous, _current = _current, registry
    try:
        yield registry
    finally:
        _current = previous
