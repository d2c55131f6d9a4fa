"""Dataset options: their defaults, declared once, and their parsing.

Options arrive as strings from ``--data-opt key=value``, as TOML values from a config,
or as Python values; :func:`resolve_options` merges them over :data:`DEFAULTS` and
parses each one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchbox.errors import ConfigError


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"dataset option {key}={value!r} must be true or false")


def as_int(value: Any, key: str, minimum: int | None = None) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(f"dataset option {key}={value!r} must be an integer") from None
    if isinstance(number, bool) or (minimum is not None and number < minimum):
        raise ConfigError(f"dataset option {key}={value!r} must be an integer >= {minimum}")
    return number


def as_float(value: Any, key: str, low: float | None = None, high: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"dataset option {key}={value!r} must be a number") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"dataset option {key}={value!r} must be within [{low}, {high}]")
    return number


def as_names(value: Any, key: str) -> tuple[str, ...]:
    """``"FLAIR,T1c"`` or ``["FLAIR", "T1c"]`` -> ``("FLAIR", "T1c")``."""
    if isinstance(value, str):
        items = [v.strip() for v in value.replace("+", ",").split(",")]
    elif isinstance(value, Sequence):
        items = [str(v).strip() for v in value]
    else:
        raise ConfigError(f"dataset option {key}={value!r} must be a comma-separated list")
    items = [v for v in items if v]
    if not items:
        raise ConfigError(f"dataset option {key} is empty")
    return tuple(items)


def as_float_pair(value: Any, key: str) -> tuple[float, float]:
    """``"-1000,1000"`` or ``[-1000, 1000]`` -> ``(-1000.0, 1000.0)`` with low < high."""
    items = as_names(value, key) if isinstance(value, str) else value
    try:
        low, high = (float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(
            f"dataset option {key}={value!r} must be two numbers 'low,high'"
        ) from None
    if not low < high:
        raise ConfigError(f"dataset option {key}={value!r} needs low < high")
    return low, high


def as_modalities(value: Any, key: str = "modalities") -> tuple[str, str]:
    names = as_names(value, key)
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(
            f"dataset option {key}={value!r} must name two different modalities, e.g. FLAIR,T1c"
        )
    return names[0], names[1]


#: Library defaults of the options every volume layout accepts.
DEFAULTS: dict[str, Any] = {
    "image_size": 128,
    "resample": False,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "split_seed": 0,
    "slices_per_case": 0,
    "lesion_fraction": None,
    "ct_window": (-1000.0, 1000.0),
    "percentiles": (0.5, 99.5),
    "crop": True,
    "crop_margin": 2,
    "fit": "resize",
    "geometry_tolerance": 1e-3,
    "target": None,
}


def _optional(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def resolve_options(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge options (``None`` = not given) over defaults, parsing strings from the CLI."""
    merged = {**DEFAULTS, **{k: v for k, v in defaults.items() if v is not None}}
    merged.update({k: v for k, v in given.items() if v is not None})
    out = dict(merged)
    out["image_size"] = as_int(merged["image_size"], "image_size", 16)
    out["resample"] = as_bool(merged["resample"], "resample")
    out["crop"] = as_bool(merged["crop"], "crop")
    out["val_fraction"] = as_float(merged["val_fraction"], "val_fraction", 0.0, 0.9)
    out["test_fraction"] = as_float(merged["test_fraction"], "test_fraction", 0.0, 0.9)
    out["split_seed"] = as_int(merged["split_seed"], "split_seed")
    out["slices_per_case"] = as_int(merged["slices_per_case"], "slices_per_case", 0)
    out["crop_margin"] = as_int(merged["crop_margin"], "crop_margin", 0)
    out["geometry_tolerance"] = as_float(merged["geometry_tolerance"], "geometry_tolerance", 0)
    out["ct_window"] = as_float_pair(merged["ct_window"], "ct_window")
    out["percentiles"] = as_float_pair(merged["percentiles"], "percentiles")
    lf = merged["lesion_fraction"]
    out["lesion_fraction"] = None if _optional(lf) else as_float(lf, "lesion_fraction", 0, 1)
    out["target"] = None if _optional(merged["target"]) else str(merged["target"]).strip()
    out["fit"] = str(merged["fit"]).strip().lower()
    return out
