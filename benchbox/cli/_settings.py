"""Command-line options generated from settings declared once (:mod:`benchbox.config.settings`).

A settings dataclass (:class:`benchbox.config.run.RunConfig`,
:class:`benchbox.bench.measure.BenchSettings`) declares each setting with its help,
panel, option name, choices and bounds; :func:`settings_parameters` turns its fields into
Typer options (``--x/--no-x`` for a flag, a repeatable ``--fusion-opt key=value`` for a
table of parameters, a choice list for a setting with ``choices``) and
:func:`given_settings` turns what was given back into config values. Every option
defaults to "not given" (``None``), so the precedence of
:func:`benchbox.config.layers.resolve` holds: defaults < preset < ``--config`` < options.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, Optional

import typer

from benchbox.config.run import RunConfig
from benchbox.config.settings import Setting, setting_of

__all__ = ["given_settings", "settings_parameters"]


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name.title().replace("_", ""), [(v, v) for v in values], type=str)  # type: ignore[return-value]


def _bare(kind: Any) -> Any:
    """``int | None`` -> ``int``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args and type(None) in typing.get_args(kind) else kind


def settings_parameters(
    config_class: type[Any] = RunConfig, keep: Callable[[Setting], bool] | None = None
) -> list[inspect.Parameter]:
    """The Typer parameters of a config dataclass's fields (those with ``cli=True``).

    Args:
        config_class: :class:`~benchbox.config.run.RunConfig` or a dataclass declared the
            same way (fields made with :func:`benchbox.config.settings.setting`).
        keep: only the settings for which this is true (``benchbox bench`` takes the
            run settings marked ``bench``).
    """
    hints = typing.get_type_hints(config_class)
    params = []
    for f in dataclasses.fields(config_class):
        spec = setting_of(f)
        if not spec.cli or (keep is not None and not keep(spec)):
            continue
        flag = spec.flag or "--" + f.name.replace("_", "-")
        kind = _bare(hints[f.name])
        extra: dict[str, Any] = {}
        annotation: Any
        if _is_table(kind):
            annotation = Optional[list[str]]  # noqa: UP045 - Typer reads the annotation at runtime
        elif kind is bool:
            flag = f"{flag}/--no-{flag[2:]}"
            annotation = Optional[bool]  # noqa: UP045
        elif spec.choices:
            annotation = Optional[_choices(f.name, spec.choices)]  # noqa: UP045
            extra["case_sensitive"] = False
        else:
            annotation = Optional[kind]  # noqa: UP045
        names = [flag, spec.short] if spec.short else [flag]
        option = typer.Option(
            None, *names, help=spec.help, rich_help_panel=spec.panel, show_default=False, **extra
        )
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
            )
        )
    return params


def _is_table(kind: Any) -> bool:
    """Whether a config field's type is a table of parameters (``key=value`` items)."""
    kind = _bare(kind)
    return typing.get_origin(kind) is dict or kind is dict


def given_settings(values: dict[str, Any], config_class: type[Any] = RunConfig) -> dict[str, Any]:
    """The options given on the command line as config values: unset ones (``None``)
    dropped, choices as strings, ``key=value`` lists parsed into tables."""
    from benchbox.config.settings import parse_options

    hints = typing.get_type_hints(config_class)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        value = values.get(f.name)
        if value is None:
            continue
        spec = setting_of(f)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, list) and _is_table(hints[f.name]):
            flag = spec.flag or "--" + f.name.replace("_", "-")
            value = parse_options(value, flag)
            if not value:
                continue
        out[f.name] = value
    return out
