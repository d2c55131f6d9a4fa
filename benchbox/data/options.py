"""Parsing of dataset options, which arrive as strings from ``--data-opt key=value``."""

from __future__ import annotations

from collections.abc import Sequence
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
