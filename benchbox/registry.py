"""Name -> factory tables, one per component kind, filled by the ``register`` callbacks.

The registry knows nothing about concrete models: plugins put factories in, lookups
take them out. :mod:`benchbox.plugins` fills a registry from the installed plugins.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchbox import errors

KINDS: tuple[str, ...] = ("fusion", "segmenter", "loss", "dataset", "metric")

#: The hook that fills each kind's table.
HOOKS: Mapping[str, str] = {
    "fusion": "register_fusions",
    "segmenter": "register_segmenters",
    "loss": "register_losses",
    "dataset": "register_datasets",
    "metric": "register_metrics",
}

_UNKNOWN: Mapping[str, type[errors.UnknownComponentError]] = {
    "fusion": errors.UnknownFusionError,
    "segmenter": errors.UnknownSegmenterError,
    "loss": errors.UnknownLossError,
    "dataset": errors.UnknownDatasetError,
    "metric": errors.UnknownMetricError,
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REQUIRED_INFO: Mapping[str, tuple[str, ...]] = {
    "loss": ("task",),
    "metric": ("task", "higher_is_better"),
}
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
        """Call the factory, turning a bad parameter into a :class:`ConfigError`."""
        self.check_params(params)
        try:
            return self.factory(*args, **params)
        except errors.BenchboxError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise errors.ConfigError(f"{self.kind} {self.name!r}: {exc}") from exc


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
    """A plugin that could not be loaded or whose hook failed."""

    provider: Provider
    error: str


class Registry:
    """Per-kind tables of registered components, and the errors met while loading."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.load_errors: list[LoadError] = []

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
        """Add one component; a duplicate name raises, naming both providers."""
        check_kind(kind)
        if not isinstance(name, str) or not _NAME.match(name):
            raise errors.PluginError(
                f"plugin {provider} registered an invalid {kind} name {name!r}: use lowercase "
                "letters, digits, '-', '_' or '.'"
            )
        if not callable(factory):
            raise errors.PluginError(f"plugin {provider}: {kind} {name!r} factory is not callable")
        info = dict(info or {})
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
        table = self._tables[kind]
        if name in table:
            raise errors.DuplicatePluginError(
                f"{kind} {name!r} is registered twice: by {table[name].provider} and by "
                f"{provider}; uninstall one, or set BENCHBOX_PLUGINS to choose"
            )
        entry = Entry(kind, name, factory, description or _first_line(factory), provider, info)
        table[name] = entry
        return entry

    def callback(self, kind: str, provider: Provider) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's hook for one kind."""

        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            description: str | None = None,
            **info: Any,
        ) -> None:
            self.add(kind, name, factory, provider, description, info)

        return register

    # -- reading -----------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        """The entry registered as ``name``, or an ``Unknown...Error`` with suggestions."""
        table = self._tables[check_kind(kind)]
        if name in table:
            return table[name]
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        # Prefix matches ("smp" -> "smp-unet") are suggestions difflib's ratio misses.
        close += [n for n in sorted(table) if n.startswith(name) and n not in close][:3]
        raise _UNKNOWN[kind](name, close[:5], len(table))

    def list(self, kind: str, pattern: str = "*") -> list[Entry]:
        """The entries of a kind whose name matches a glob pattern, sorted by name."""
        table = self._tables[check_kind(kind)]
        return [table[n] for n in sorted(table) if fnmatch.fnmatchcase(n, pattern)]

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from self.list(kind)

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._tables.get(kind, {})


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a component kind, else raise :class:`UnknownKindError`."""
    if kind in KINDS:
        return kind
    close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise errors.UnknownKindError(f"unknown plugin kind {kind!r}{hint} (kinds: {', '.join(KINDS)})")
