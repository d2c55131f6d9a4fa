"""Overlaying values from a config file or the command line on a settings dataclass.

:func:`apply` is how a preset, ``--config FILE`` and the command line set the fields of
a :class:`benchbox.config.run.RunConfig` (or any dataclass declared with
:func:`benchbox.config.settings.setting`): names and types are checked, tables of plugin
parameters merged key by key, and ``augment`` read as a list or a table.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from benchbox.config.settings import merge_tables, nest_augment_options
from benchbox.errors import ConfigError

__all__ = ["NONE", "apply"]

NONE = "none"
Config = TypeVar("Config")


def apply(config: Config, values: Mapping[str, Any], source: str) -> Config:
    """Overlay ``values`` (from a file or the command line) on ``config``, checking names
    and types. Tables of plugin parameters are merged key by key."""
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
        if key == "trackers":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"{source}: trackers must be a list of tracker names")
            config.trackers = list(dict.fromkeys(names))  # type: ignore[attr-defined]
            continue
        if key == "augment":
            _apply_augment(config, value, source)
            continue
        if key == "augment_opts" and isinstance(value, Mapping):
            value = nest_augment_options(value, source)
        if key.endswith("_opts"):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a table of parameters")
            merge_tables(getattr(config, key), value)
            continue
        setattr(config, key, _coerce(fields[key], value, source))
    return config


def _apply_augment(config: Any, value: Any, source: str) -> None:
    """``augment``: a list of transform names (``"flip,affine"`` or ``"none"`` as text),
    which replaces the enabled transforms and drops the options of those turned off; or
    a table ``{name: {option: value}}`` (``[augment]`` in a preset), which sets both."""
    if isinstance(value, Mapping):
        for name, opts in value.items():
            if not isinstance(opts, Mapping):
                raise ConfigError(f"{source}: augment.{name} must be a table of options")
            if opts:
                merge_tables(config.augment_opts.setdefault(name, {}), opts)
        config.augment = list(value)
        return
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ConfigError(f"{source}: augment must be a list of transform names")
    names = [n.strip() for item in value for n in item.split(",")]
    config.augment = list(dict.fromkeys(n for n in names if n and n != NONE))
    config.augment_opts = {k: v for k, v in config.augment_opts.items() if k in config.augment}


def _coerce(field: dataclasses.Field[Any], value: Any, source: str) -> Any:
    key, default = field.name, field.default
    if value is None or default is None:
        return value
    kind = type(default)
    if kind is str and isinstance(value, list) and all(_is_number(v) for v in value):
        return ",".join(str(v) for v in value)  # patch_size = [64, 64, 64] in a TOML file
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{source}: {key} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
