"""Name -> factory tables, one per component kind, filled by the ``register`` callbacks.

The registry knows nothing about concrete models: plugins put factories in, lookups
take them out. :mod:`benchbox.hooks.manager` fills a registry from the installed plugins.
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import inspect
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchbox import errors
from benchbox.errors import is_out_of_memory

__all__ = [
    "HOOKS",
    "KINDS",
    "Entry",
    "LoadError",
    "Parameter",
    "Provider",
    "Registry",
    "blame_plugins",
    "check_kind",
    "duplicate_error",
    "make_entry",
    "plugin_bug",
]

KINDS: tuple[str, ...] = (
    "fusion",
    "segmenter",
    "loss",
    "dataset",
    "metric",
    "executor",
    "tracker",
    "transform",
    "region",
    "distiller",
)

#: The hook that fills each kind's table.
HOOKS: Mapping[str, str] = {
    "fusion": "register_fusions",
    "segmenter": "register_segmenters",
    "loss": "register_losses",
    "dataset": "register_datasets",
    "metric": "register_metrics",
    "executor": "register_executors",
    "tracker": "register_trackers",
    "transform": "register_transforms",
    "region": "register_regions",
    "distiller": "register_distillers",
}

_UNKNOWN: Mapping[str, type[errors.UnknownComponentError]] = {
    "fusion": errors.UnknownFusionError,
    "segmenter": errors.UnknownSegmenterError,
    "loss": errors.UnknownLossError,
    "dataset": errors.UnknownDatasetError,
    "metric": errors.UnknownMetricError,
    "executor": errors.UnknownExecutorError,
    "tracker": errors.UnknownTrackerError,
    "transform": errors.UnknownTransformError,
    "region": errors.UnknownRegionError,
    "distiller": errors.UnknownDistillerError,
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REQUIRED_INFO: Mapping[str, tuple[str, ...]] = {
    "loss": ("task",),
    "metric": ("task", "higher_is_better"),
    "transform": ("family",),
    "distiller": ("task",),
}
_FAMILIES = ("geometric", "intensity")
_TASKS = ("fusion", "segmentation")


@dataclass(frozen=True)
class Provider:
    """Who registered a component: the plugin and the distribution that installed it."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip() + f" ({self.plugin})"
        return self.plugin


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter of a component, as shown to users."""

    name: str
    default: Any = inspect.Parameter.empty
    annotation: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def __str__(self) -> str:
        return self.name if self.required else f"{self.name}={self.default!r}"


@dataclass(frozen=True)
class Entry:
    """A registered component: its factory and everything shown about it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    provider: Provider
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def parameters(self) -> list[Parameter]:
        """The factory's keyword parameters with their defaults (``**kwargs`` omitted)."""
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return []
        return [
            Parameter(p.name, p.default, _annotation(p.annotation))
            for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
        ]

    def accepts(self, name: str) -> bool:
        """Whether the factory takes a keyword ``name`` (by name, or through ``**kwargs``).

        A factory whose signature cannot be read is assumed to accept anything.
        """
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return True
        if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            return True
        return any(p.name == name for p in self.parameters)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` naming a parameter the factory does not take, or a
        value of the wrong kind for a parameter whose default is a bool, int or float.

        Values from ``--fusion-opt key=value`` that are not TOML literals stay strings;
        caught here, ``depth=abc`` is named as such instead of failing deep in the model.
        """
        known = [p.name for p in self.parameters]
        declared = {p.name: p for p in self.parameters}
        for key, value in params.items():
            if key in declared and not _same_kind(declared[key], value):
                p = declared[key]
                raise errors.ConfigError(
                    f"{self.kind} {self.name!r} parameter {key!r} takes "
                    f"{p.annotation or type(p.default).__name__} "
                    f"(default {p.default!r}), got {value!r}"
                )
            if not self.accepts(key):
                close = difflib.get_close_matches(key, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else ""
                valid = ", ".join(known) or "none"
                raise errors.ConfigError(
                    f"{self.kind} {self.name!r} has no parameter {key!r}; "
                    f"{hint or 'parameters: ' + valid}"
                )

    def build(self, *args: Any, **params: Any) -> Any:
        """Call the factory; a bad parameter is a :class:`ConfigError`, a crash a bug.

        A ``ValueError`` (or :class:`ConfigError`) raised by the factory is how a plugin
        refuses a parameter value, so it is reported as a configuration error. Any other
        exception is the plugin's own bug: :class:`PluginBugError` naming the component,
        its provider and the exception.
        """
        self.check_params(params)
        try:
            inspect.signature(self.factory).bind(*args, **params)
        except (TypeError, ValueError) as exc:
            # An unreadable signature raises ValueError from signature(): nothing to check.
            if isinstance(exc, TypeError):
                raise errors.ConfigError(f"{self.kind} {self.name!r}: {exc}") from None
        try:
            return self.factory(*args, **params)
        except errors.BenchboxError:
            raise
        except ValueError as exc:
            raise errors.ConfigError(f"{self.kind} {self.name!r}: {exc}") from exc
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            raise plugin_bug(self, exc, "while being built") from exc

    @property
    def package(self) -> str | None:
        """The top-level package of the factory's code (``benchbox_plugins``)."""
        module = getattr(self.factory, "__module__", None)
        return module.split(".")[0] if isinstance(module, str) else None


def plugin_bug(entry: Entry, exc: BaseException, doing: str) -> errors.PluginBugError:
    """The one-line error for an exception raised by a component's own code."""
    return errors.PluginBugError(
        f"{entry.kind} {entry.name!r} of plugin {entry.provider} failed {doing}: "
        f"{errors.describe(exc, entry.package)}; this is a bug in the plugin, not in your "
        "options (--debug or BENCHBOX_DEBUG=1 shows the traceback)"
    )


@contextmanager
def blame_plugins(components: Iterable[tuple[Entry, Any]], doing: str) -> Iterator[None]:
    """Report an exception raised inside a built component as that plugin's bug.

    The culprit is the innermost frame of the traceback whose ``self`` is one of the
    ``(entry, built object)`` pairs: an ``nn.Module``'s ``forward`` (or the module call
    around it) runs with ``self`` bound to the module, so a crash deep inside torch
    called from a plugin's ``forward`` is still that plugin's. Exceptions raised
    elsewhere, benchbox's own errors and out-of-memory errors pass through unchanged.

    Args:
        components: ``(entry, object built from it)`` pairs; ``None`` objects are ignored.
        doing: what was being done, for the message (``"in forward during training"``).
    """
    owners = {id(obj): entry for entry, obj in components if obj is not None}
    try:
        yield
    except errors.BenchboxError:
        raise
    except Exception as exc:
        culprit = None
        for frame, _ in traceback.walk_tb(exc.__traceback__):
            culprit = owners.get(id(frame.f_locals.get("self")), culprit)
        if culprit is None or is_out_of_memory(exc):
            raise
        raise plugin_bug(culprit, exc, doing) from exc


def _same_kind(param: Parameter, value: Any) -> bool:
    """Whether ``value`` fits a parameter with a bool, int or float default.

    An int is fine where a float is expected, and a float where the int default is
    annotated as a float; any other default, or none, accepts anything.
    """
    default, number = param.default, (int, float)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return not isinstance(default, number)
    if isinstance(default, int):
        return isinstance(value, number if "float" in param.annotation else int)
    if isinstance(default, float):
        return isinstance(value, number)
    return True


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


@dataclass(frozen=True)
class LoadError:
    """A plugin that could not be loaded or whose hook failed.

    ``details`` holds the formatted traceback, shown by ``--debug``.
    """

    provider: Provider
    error: str
    details: str = ""


#: ``info`` keys every kind may carry (see :class:`benchbox.hookspecs.Register`).
_COMMON_INFO = ("slow", "baseline", "dims")
#: ``info`` keys of one kind, as its ``register_*`` hook documents them.
_KNOWN_INFO: Mapping[str, tuple[str, ...]] = {
    "loss": ("task",),
    "metric": ("task", "higher_is_better", "unit", "min_size", "headline", "headline_key"),
    "transform": ("family",),
    "tracker": ("extra",),
    "executor": ("extra",),
    "distiller": ("task",),
}


def make_entry(
    kind: str,
    name: str,
    factory: Callable[..., Any],
    provider: Provider,
    description: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> Entry:
    """A checked :class:`Entry`; an invalid registration raises :class:`PluginError`."""
    check_kind(kind)
    if not isinstance(name, str) or not _NAME.match(name):
        raise errors.PluginError(
            f"plugin {provider} registered an invalid {kind} name {name!r}: use lowercase "
            "letters, digits, '-', '_' or '.'"
        )
    if not callable(factory):
        raise errors.PluginError(f"plugin {provider}: {kind} {name!r} factory is not callable")
    info = dict(info or {})
    known = {*_COMMON_INFO, *_KNOWN_INFO.get(kind, ())}
    for key in info:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise errors.PluginError(
                f"plugin {provider}: {kind} {name!r} was registered with an unknown info key "
                f"{key!r}{hint} (known for a {kind}: {', '.join(sorted(known))})"
            )
    for key in _REQUIRED_INFO.get(kind, ()):
        if key not in info:
            raise errors.PluginError(
                f"plugin {provider}: {kind} {name!r} must be registered with {key}=..."
            )
    if "task" in info and info["task"] not in _TASKS:
        raise errors.PluginError(
            f"plugin {provider}: {kind} {name!r} has task={info['task']!r}; "
            f"expected one of {', '.join(_TASKS)}"
        )
    if kind == "transform" and info["family"] not in _FAMILIES:
        raise errors.PluginError(
            f"plugin {provider}: transform {name!r} has family={info['family']!r}; "
            f"expected one of {', '.join(_FAMILIES)}"
        )
    return Entry(kind, name, factory, description or _first_line(factory), provider, info)


class Registry:
    """Per-kind tables of registered components, and the errors met while loading.

    Two providers may register the same name: both are kept and listed, and only a
    lookup of that name fails (:class:`DuplicatePluginError` naming both), so runs that
    use other names keep working until the user disables one of the two plugins.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in KINDS}
        self.load_errors: list[LoadError] = []
        #: Problems that did not stop loading (an unknown name in ``BENCHBOX_PLUGINS``).
        self.warnings: list[str] = []
        #: Plugins the user disabled (``BENCHBOX_DISABLE``, ``--disable``).
        self.disabled: list[Provider] = []
        #: The plugin manager that filled this registry; runs call the lifecycle hooks
        #: of its plugins (``None``: a registry filled by hand has no observers).
        self.plugin_manager: Any = None

    # -- filling -----------------------------------------------------------------------
    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        provider: Provider,
        description: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Check and add one component (see :func:`make_entry` and :meth:`insert`)."""
        return self.insert(make_entry(kind, name, factory, provider, description, info))

    def insert(self, entry: Entry) -> Entry:
        """Add a checked entry; a name another provider holds is kept as a duplicate.

        Raises:
            PluginError: the same provider registered this name for this kind twice.
        """
        providers = self._tables[entry.kind].setdefault(entry.name, [])
        if any(e.provider == entry.provider for e in providers):
            raise errors.PluginError(
                f"plugin {entry.provider} registered {entry.kind} {entry.name!r} twice"
            )
        providers.append(entry)
        return entry

    # -- reading -----------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        """The entry registered as ``name``.

        Raises:
            UnknownComponentError: no plugin registered ``name`` (with suggestions).
            DuplicatePluginError: two plugins registered ``name``; names both.
        """
        table = self._tables[check_kind(kind)]
        if name in table:
            found = table[name]
            if len(found) > 1:
                raise duplicate_error(found)
            return found[0]
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        # Prefix matches ("smp" -> "smp-unet") are suggestions difflib's ratio misses.
        close += [n for n in sorted(table) if n.startswith(name) and n not in close][:3]
        raise _UNKNOWN[kind](name, close[:5], len(table))

    def list(self, kind: str, pattern: str = "*") -> list[Entry]:
        """The entries of a kind whose name matches a glob pattern, sorted by name.

        A name two plugins registered appears once per provider, in loading order; see
        :meth:`duplicates`.
        """
        table = self._tables[check_kind(kind)]
        return [e for n in sorted(table) if fnmatch.fnmatchcase(n, pattern) for e in table[n]]

    def duplicates(self, kind: str | None = None) -> builtins.list[builtins.list[Entry]]:
        """Every name registered by more than one plugin: the entries of each, by kind."""
        kinds = KINDS if kind is None else (check_kind(kind),)
        return [
            self._tables[k][n]
            for k in kinds
            for n in sorted(self._tables[k])
            if len(self._tables[k][n]) > 1
        ]

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from self.list(kind)

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._tables.get(kind, {})


def duplicate_error(entries: Iterable[Entry]) -> errors.DuplicatePluginError:
    """One line naming every provider of a duplicated name and how to disable one."""
    found = list(entries)
    first = found[0]
    providers = " and by ".join(str(e.provider) for e in found)
    names = " or ".join(e.provider.plugin for e in found)
    times = "twice" if len(found) == 2 else f"{len(found)} times"
    return errors.DuplicatePluginError(
        f"{first.kind} {first.name!r} is registered {times}: by {providers}; disable one "
        f"with `benchbox --disable NAME` or BENCHBOX_DISABLE=NAME (NAME: {names})"
    )


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a component kind, else raise :class:`UnknownKindError`."""
    if kind in KINDS:
        return kind
    close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise errors.UnknownKindError(f"unknown plugin kind {kind!r}{hint} (kinds: {', '.join(KINDS)})")
