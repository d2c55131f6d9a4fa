"""The one plugin manager: loads the ``benchbox`` entry points and fills the registry.

Built-in components are declared in benchbox's own ``pyproject.toml`` under the same
entry-point group as third-party packages, so both take exactly this path.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import re
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

from benchbox import errors, hookspecs
from benchbox.registry import HOOKS, KINDS, LoadError, Provider, Registry

ENTRY_POINT_GROUP = "benchbox"
#: Comma-separated distribution names (or ``dist:entry-point``) allowed to load; unset
#: loads every installed plugin, an empty value loads none.
ENV_VAR = "BENCHBOX_PLUGINS"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _describe(exc: BaseException) -> str:
    """One line for a load error: the exception and where in the plugin it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}{where}" if msg else f"{type(exc).__name__}{where}"


def _allowed(env: str | None) -> set[str] | None:
    if env is None:
        return None
    return {_normalise(part.strip()) for part in env.split(",") if part.strip()}


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


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class PluginHost:
    """A plugin manager, where each plugin came from, and what failed to load."""

    def __init__(self) -> None:
        self.pm = make_plugin_manager()
        self.providers: dict[str, Provider] = {}
        self.load_errors: list[LoadError] = []

    def register(self, plugin: Any, provider: Provider) -> None:
        """Register one plugin object; an invalid hook implementation is a load error."""
        try:
            self.pm.register(plugin, name=provider.plugin)
        except pluggy.PluginValidationError as exc:
            self.load_errors.append(LoadError(provider, _describe(exc)))
            return
        self.providers[provider.plugin] = provider

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP, env: str | None = None) -> None:
        """Import every allowed entry point of ``group``; import failures are recorded.

        Unlike ``PluginManager.load_setuptools_entrypoints``, one plugin that fails to
        import does not stop the others from loading.
        """
        allowed = _allowed(env)
        for ep, provider in iter_entry_points(group):
            dist = _normalise(provider.distribution or "")
            if allowed is not None and not {dist, f"{dist}:{_normalise(ep.name)}"} & allowed:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self.load_errors.append(LoadError(provider, _describe(exc)))
                continue
            self.register(plugin, provider)

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
        """Call every plugin's hooks, each with a callback that knows the plugin."""
        registry.load_errors.extend(self.load_errors)
        failed: set[str] = set()
        for kind in KINDS:
            caller = getattr(self.pm.hook, HOOKS[kind])
            for impl in caller.get_hookimpls():
                provider = self.providers.get(impl.plugin_name, Provider(impl.plugin_name))
                if provider.plugin in failed:
                    continue
                try:
                    impl.function(register=registry.callback(kind, provider))
                except errors.DuplicatePluginError:
                    raise
                except Exception as exc:
                    failed.add(provider.plugin)
                    registry.load_errors.append(LoadError(provider, _describe(exc)))
        return registry


def create_registry(
    plugins: Iterable[Any] = (),
    *,
    entry_points: bool = True,
    strict: bool = False,
    env: str | object | None = ...,
) -> Registry:
    """Load plugins and return a filled registry.

    Args:
        plugins: extra plugin objects registered in-process (tests, notebooks), each
            with an optional ``__name__``.
        entry_points: load the installed ``benchbox`` entry points.
        strict: raise :class:`PluginError` if any plugin failed to load.
        env: the ``BENCHBOX_PLUGINS`` value; by default read from the environment.
    """
    host = PluginHost()
    if entry_points:
        host.load_entry_points(env=os.environ.get(ENV_VAR) if env is ... else env)  # type: ignore[arg-type]
    for plugin in plugins:
        host.register(plugin, Provider(getattr(plugin, "__name__", repr(plugin))))
    host.check_pending()
    registry = host.fill(Registry())
    if strict and registry.load_errors:
        first = registry.load_errors[0]
        more = len(registry.load_errors) - 1
        suffix = f" (and {more} more)" if more else ""
        raise errors.PluginError(f"plugin {first.provider} failed to load: {first.error}{suffix}")
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
