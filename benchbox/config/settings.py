"""How a run setting is declared and written: its help and option, and ``key=value`` text.

:class:`benchbox.config.run.RunConfig` declares every setting once with :func:`setting`;
``benchbox run`` builds its options from the :class:`Setting` of each field
(:mod:`benchbox.cli.run`). The ``parse_*`` functions read the values of repeatable
options such as ``--fusion-opt key=value`` and ``--augment-opt affine.degrees=15``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchbox.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DATA",
    "EVALUATION",
    "HARDWARE",
    "MODELS",
    "OUTPUT",
    "TRAINING",
    "Setting",
    "check_settings",
    "merge_tables",
    "nest_augment_options",
    "parse_augment_options",
    "parse_options",
    "parse_value",
    "setting",
    "setting_of",
]

# Help panels of `benchbox run --help`, in the order they are shown.
MODELS, DATA, TRAINING, DISTILLATION, EVALUATION, HARDWARE, OUTPUT = (
    "Models",
    "Data",
    "Training",
    "Distillation",
    "Evaluation",
    "Hardware",
    "Files and configs",
)


@dataclass(frozen=True)
class Setting:
    """How one :class:`RunConfig` field is shown to users (``dataclasses.field`` metadata).

    Attributes:
        help: one sentence for ``benchbox run --help``.
        panel: the help panel that groups it.
        flag: the option name; by default ``--`` and the field name with dashes.
        short: a one-letter alias such as ``-f``.
        choices: the accepted values of a string setting, shown in the help.
        cli: ``False`` keeps a setting out of the command line (config files only).
        hashed: ``False`` for settings that say where or how fast a run happens, not
            what it computes; they are left out of the config hash, so the same
            experiment on two machines hashes the same.
        low, high: the bounds of a number (inclusive; ``None``: unbounded); ``low_open``
            excludes ``low`` itself (a learning rate must be > 0). Numbers must also be
            finite.
        multiple_of: an int setting must be a multiple of this.
        bench: the setting also shapes what ``benchbox bench`` measures (models,
            losses, sizes, precision), so ``benchbox bench`` takes it too.
    """

    help: str
    panel: str = TRAINING
    flag: str | None = None
    short: str | None = None
    choices: tuple[str, ...] = ()
    cli: bool = True
    hashed: bool = True
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    multiple_of: int | None = None
    bench: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming the setting when ``value`` is out of its
        choices or bounds."""
        option = self.flag or "--" + name.replace("_", "-")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{option} must be one of {', '.join(self.choices)}, not {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        bound = ""
        if self.low is not None:
            bound = f"> {_number(self.low)}" if self.low_open else f">= {_number(self.low)}"
        # A float may be inf or nan, and says so: "a finite number > 0" reads well then.
        kind = "a finite number " if isinstance(value, float) else ""
        outside = (
            not math.isfinite(value)
            or (self.low is not None and (value <= self.low if self.low_open else value < self.low))
            or (self.high is not None and value > self.high)
        )
        if outside:
            if self.high is not None:
                bound = (f"{bound} and " if bound else "") + f"<= {_number(self.high)}"
            raise ConfigError(f"{name} must be {kind}{bound or '(finite)'}, got {value}")
        if self.multiple_of and isinstance(value, int) and value % self.multiple_of:
            raise ConfigError(f"{name} must be a multiple of {self.multiple_of}, got {value}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def check_settings(config: Any) -> None:
    """Check every field of a settings dataclass against its :class:`Setting`."""
    for f in dataclasses.fields(config):
        setting_of(f).check(f.name, getattr(config, f.name))


def setting(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A :class:`RunConfig` field with its :class:`Setting` (``help`` and how it shows).

    A mutable default (a dict or a list) is given as a factory: ``setting(dict, "...")``
    uses ``default_factory``.
    """
    meta = {"setting": Setting(help, **kwargs)}
    if default is dict or default is list:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def setting_of(f: dataclasses.Field[Any]) -> Setting:
    """The :class:`Setting` of a config field (a bare field gets one without help)."""
    spec = f.metadata.get("setting")
    return spec if isinstance(spec, Setting) else Setting("")


def parse_value(text: str) -> Any:
    """A ``key=value`` option value: TOML literal if it parses (``3``, ``0.5``, ``true``,
    ``[1, 2]``, ``"x"``), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """Parse repeatable ``--xxx-opt key=value`` options.

    ``name.key=value`` sets ``key`` for the component ``name`` only, like a
    ``[fusion_opts.name]`` table in a config file: ``--fusion-opt dual.width=8`` in a
    sweep over ``mean,dual`` sizes ``dual`` and leaves ``mean`` alone.
    """
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts) or len(parts) > 2:
            raise ConfigError(f"{flag} expects key=value or name.key=value, got {item!r}")
        if len(parts) == 2:
            table = result.setdefault(parts[0], {})
            if not isinstance(table, dict):
                raise ConfigError(f"{flag}: {parts[0]!r} is given both as a value and a table")
            table[parts[1]] = parse_value(value.strip())
        else:
            result[parts[0]] = parse_value(value.strip())
    return result


def parse_augment_options(items: list[str] | None) -> dict[str, Any]:
    """Parse repeatable ``--augment-opt NAME.KEY=VALUE`` into ``{NAME: {KEY: VALUE}}``."""
    return nest_augment_options(parse_options(items, "--augment-opt"), "--augment-opt")


def nest_augment_options(
    values: Mapping[str, Any], source: str, setting: str = "augment_opts"
) -> dict[str, Any]:
    """``{"affine.degrees": 15}`` (the command line) as ``{"affine": {"degrees": 15}}``;
    a nested table (a config file's ``[augment_opts.affine]``) is kept as it is.

    ``setting`` names the table for errors: ``augment_opts`` (``--augment-opt``) or
    ``distill_opts`` (``--distill-opt``), both keyed by component name.
    """
    result: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            merge_tables(result.setdefault(key, {}), value)
            continue
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            flag = "--" + setting.removesuffix("s").replace("_", "-")
            what, example = (
                ("TRANSFORM", "affine.degrees=15")
                if setting == "augment_opts"
                else ("DISTILLER", "logits.temperature=2")
            )
            raise ConfigError(
                f"{source}: {setting} ({flag}) takes {what}.OPTION=VALUE ({example}), got {key!r}"
            )
        result.setdefault(name, {})[option] = value
    return result


def apply_augment(config: Any, value: Any, source: str) -> None:
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
    config.augment = list(dict.fromkeys(n for n in names if n and n != "none"))
    config.augment_opts = {k: v for k, v in config.augment_opts.items() if k in config.augment}


def merge_tables(target: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Merge parameter tables key by key, nested tables included."""
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_tables(target[key], value)
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value
