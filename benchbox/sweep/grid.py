"""The runs of a sweep: the cartesian product of its axes, less the excluded combinations.

An axis is a run setting (``fusion``, ``seg``, ``seed``, ``lr``, ...) or a plugin
parameter written as a dotted path into a parameter table (``seg_opts.encoder``,
``fusion_opts.dual.width``), with the list of values it takes. Axes come from the
comma-separated options of ``benchbox sweep`` (``--fusion mean,dual --seed 0,1,2``) or
from a grid file::

    # grid.toml
    [base]                      # settings shared by every run (any run setting)
    epochs = 4

    [axes]
    fusion = ["mean", "dual"]
    seg = ["attunet", "smp-unet"]
    seed = [0, 1, 2]
    "seg_opts.encoder" = ["tu-resnet18"]

    [[exclude]]                 # a combination matching every key here is left out
    fusion = "mean"
    seg = ["smp-unet"]          # a list matches any of its values

The order of the runs is the order of the product, the first axis varying slowest, so a
listing (``--dry-run``) reads like a table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox.config.files import read_toml
from benchbox.config.run import RunConfig
from benchbox.errors import ConfigError

__all__ = [
    "CLI_AXES",
    "COMMAND_LINE",
    "Grid",
    "check_axis_name",
    "merge_grids",
    "read_grid",
    "split_list",
]

#: Settings that ``benchbox sweep`` accepts as comma-separated lists on the command line.
CLI_AXES = ("fusion", "seg", "loss", "fusion_loss", "dataset", "seed")


#: Where a setting of a grid came from when nothing else says so.
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Grid:
    """Fixed settings, axes and exclusion rules of a sweep.

    ``base_source`` names where the base settings came from and ``sources`` where each
    axis did (``grid file grid.toml``; an axis missing from it came from the command
    line), so that an error about a value names its source.
    """

    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    base_source: str = COMMAND_LINE

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of axis values (``{axis: value}``) that no rule excludes."""
        names = list(self.axes)
        combos = []
        for values in itertools.product(*(self.axes[n] for n in names)):
            combo = dict(zip(names, values, strict=True))
            if not any(_matches(rule, combo) for rule in self.exclude):
                combos.append(combo)
        return combos

    def overrides(self, combo: Mapping[str, Any]) -> dict[str, Any]:
        """The run-config overrides of one combination: the base settings, then the
        combination's values, dotted paths expanded into nested parameter tables."""
        values: dict[str, Any] = {}
        for _, layer in self.layers(combo):
            for key, value in layer.items():
                _set_path(values, key, value)
        return values

    def layers(self, combo: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The overrides of one combination as (source, values) pairs, in the order they
        apply: the base settings, then the combination's values, each grouped by where
        it came from (:attr:`sources`), for :func:`benchbox.config.layers.resolve`."""
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in combo.items():
            _set_path(grouped.setdefault(self.sources.get(key, COMMAND_LINE), {}), key, value)
        base: dict[str, Any] = {}
        for key, value in self.base.items():
            _set_path(base, key, value)
        return [*([(self.base_source, base)] if base else []), *grouped.items()]


def _matches(rule: Mapping[str, list[Any]], combo: Mapping[str, Any]) -> bool:
    return all(combo.get(key) in allowed for key, allowed in rule.items())


def _set_path(target: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        if isinstance(value, Mapping) and isinstance(target.get(head), dict):
            target[head].update(value)
        else:
            target[head] = value
        return
    child = target.setdefault(head, {})
    if not isinstance(child, dict):
        raise ConfigError(f"grid: {head!r} is a setting, not a table of parameters")
    _set_path(child, rest, value)


_SETTINGS = {f for f in RunConfig.__dataclass_fields__}
#: The parameter tables: every ``*_opts`` setting (``augment_opts`` and ``distill_opts`` are
#: keyed by component, ``distill_opts.logits.temperature``).
_TABLES = tuple(f for f in RunConfig.__dataclass_fields__ if f.endswith("_opts"))


def check_axis_name(name: str, source: str) -> None:
    """An axis must name a run setting or a path into a plugin parameter table."""
    head, dot, rest = name.partition(".")
    if head not in _SETTINGS:
        import difflib

        close = difflib.get_close_matches(head, sorted(_SETTINGS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{source}: unknown setting {head!r}{hint}")
    if dot and head not in _TABLES:
        raise ConfigError(
            f"{source}: {name!r}: only parameter tables ({', '.join(_TABLES)}) take a dotted path"
        )
    if dot and not rest:
        raise ConfigError(f"{source}: {name!r} has an empty parameter name")
    if not dot and head in _TABLES:
        raise ConfigError(f"{source}: {head!r} is a table: vary one parameter, e.g. {head}.width")


def split_list(text: str) -> list[str]:
    """``"mean, dual"`` -> ``["mean", "dual"]``; an empty item is an error."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ConfigError(f"empty item in the list {text!r}")
    return items


def _as_values(name: str, value: Any, source: str) -> list[Any]:
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{source}: axis {name!r} has no values")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"{source}: axis {name!r} repeats a value: {values}")
    return values


def read_grid(path: str | Path) -> Grid:
    """Read a grid file (see the module docstring); every name is checked."""
    source = f"grid file {path}"
    data = read_toml(path)
    unknown = set(data) - {"base", "axes", "exclude"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))} "
            "(expected [base], [axes], [[exclude]])"
        )
    base = data.get("base", {})
    axes_in = data.get("axes", {})
    rules_in = data.get("exclude", [])
    if not isinstance(base, dict) or not isinstance(axes_in, dict):
        raise ConfigError(f"{source}: [base] and [axes] must be tables")
    if not isinstance(rules_in, list):
        raise ConfigError(f"{source}: exclude rules are written [[exclude]]")
    for key in _flatten(base):
        check_axis_name(key, source)
    axes = {}
    for name, value in _flatten(axes_in).items():
        check_axis_name(name, source)
        axes[name] = _as_values(name, value, source)
    rules = []
    for rule in rules_in:
        if not isinstance(rule, dict) or not rule:
            raise ConfigError(f"{source}: an [[exclude]] rule must name at least one axis")
        flat = _flatten(rule)
        for key in flat:
            if key not in axes:
                raise ConfigError(f"{source}: exclude rule names {key!r}, which is not an axis")
        rules.append({k: _as_values(k, v, source) for k, v in flat.items()})
    return Grid(
        base=_flatten(base),
        axes=axes,
        exclude=rules,
        sources=dict.fromkeys(axes, source),
        base_source=source,
    )


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"seg_opts": {"encoder": [...]}}`` -> ``{"seg_opts.encoder": [...]}``: an axis may
    be written as a dotted key or as a nested table."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def merge_grids(file_grid: Grid | None, cli_axes: Mapping[str, Sequence[Any]]) -> Grid:
    """Axes given on the command line replace the grid file's axes of the same name."""
    grid = file_grid or Grid()
    axes = dict(grid.axes)
    sources = dict(grid.sources)
    for name, values in cli_axes.items():
        axes[name] = _as_values(name, list(values), COMMAND_LINE)
        sources.pop(name, None)
    rules = [r for r in grid.exclude if all(k in axes for k in r)]
    return Grid(
        base=dict(grid.base),
        axes=axes,
        exclude=rules,
        sources=sources,
        base_source=grid.base_source,
    )
