"""A run config built in layers: defaults < preset < config file < command line < more.

Each layer is applied by :func:`apply`, which checks every name and type and names the
layer in its errors (a file, "command line", a sweep's grid file); :func:`resolve`
stacks them and checks the result (:meth:`RunConfig.validate`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchbox.config.distill import NO_TEACHER, distill_names
from benchbox.config.files import read_toml
from benchbox.config.presets import preset_path
from benchbox.config.run import _FIELDS, _OPT_TABLES, RunConfig
from benchbox.config.settings import apply_augment, merge_tables, nest_augment_options
from benchbox.errors import ConfigError

__all__ = ["apply", "resolve"]


def apply(config: RunConfig, values: Mapping[str, Any], source: str) -> RunConfig:
    """Overlay ``values`` (from a file or the command line) on ``config``, checking names
    and types. Tables of plugin parameters are merged key by key."""
    for key, value in values.items():
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
        if key == "trackers":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"{source}: trackers must be a list of tracker names")
            config.trackers = list(dict.fromkeys(names))
            continue
        if key == "augment":
            apply_augment(config, value, source)
            continue
        if key == "distill":
            config.distill = distill_names(value, source)
            continue
        if key == "teacher" and value in NO_TEACHER:
            value = None
        if key in ("augment_opts", "distill_opts") and isinstance(value, Mapping):
            value = nest_augment_options(value, source, key)
        if key in _OPT_TABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a table of parameters")
            merge_tables(getattr(config, key), value)
            continue
        setattr(config, key, _coerce(key, value, source))
    return config


def _coerce(key: str, value: Any, source: str) -> Any:
    default = _FIELDS[key].default
    if value is None or default is None:
        return value
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{source}: {key} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    layers: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> RunConfig:
    """Build the run config: defaults < preset < config file < overrides < ``layers``.

    ``layers`` are (source, values) pairs applied in order after the command line's
    ``overrides``, each named by its source in errors (e.g. a sweep's grid file).
    """
    overrides = dict(overrides or {})
    file_values = read_toml(config_file) if config_file else {}
    name = preset or overrides.get("preset") or file_values.get("preset") or RunConfig.preset
    config = RunConfig()
    path = preset_path(name)
    apply(config, read_toml(path), str(path))
    config.preset = name
    if config_file:
        apply(config, file_values, str(config_file))
        config.config_file = str(config_file)
    apply(config, overrides, "command line")
    for source, values in layers:
        apply(config, values, source)
    config.validate()
    return config
