"""Dataset options: their defaults, declared once, and their parsing.

Options arrive as strings from ``--data-opt key=value``, as TOML values from a config,
or as Python values; :func:`resolve_options` merges them over the defaults of
:data:`OPTIONS` and parses each one. A reader's signature takes its defaults from
:data:`DEFAULTS`, so ``benchbox plugins --params`` shows the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchbox.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "OPTIONS",
    "DatasetOption",
    "as_bool",
    "as_float",
    "as_float_pair",
    "as_int",
    "as_modalities",
    "as_names",
    "resolve_options",
]


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


def _optional(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


@dataclass(frozen=True)
class DatasetOption:
    """One dataset option: its default, its meaning and how a given value is parsed.

    Attributes:
        default: the library default (a reader's config file or the run may override).
        help: what it means, for docstrings and ``docs/datasets.md``.
        parse: ``parse(value, key)`` -> the checked value; raises :class:`ConfigError`.
    """

    default: Any
    help: str
    parse: Callable[[Any, str], Any]


def _nullable(parse: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, key: None if _optional(value) else parse(value, key)


#: Every option the readers of real images share, declared once. The volume readers
#: (``nifti``, ``cases``) take them all; ``pairs`` takes ``image_size``, ``resample``,
#: ``val_fraction`` and ``split_seed`` (its test split is a folder, so no folds).
#:
#: ``val_fraction`` and ``test_fraction`` default to 0.2 everywhere: a fifth of the
#: cases for testing is the usual hold-out of medical segmentation papers and of
#: 5-fold cross-validation, and the same share for validation keeps both estimates
#: from resting on one or two cases of a small collection.
OPTIONS: dict[str, DatasetOption] = {
    "image_size": DatasetOption(
        128, "side of the square training slices", lambda v, k: as_int(v, k, 16)
    ),
    "resample": DatasetOption(
        False, "resample a modality whose grid differs from modality a, instead of failing", as_bool
    ),
    "val_fraction": DatasetOption(
        0.2, "share of the cases held out for validation", lambda v, k: as_float(v, k, 0.0, 0.9)
    ),
    "test_fraction": DatasetOption(
        0.2, "share of the cases held out for testing", lambda v, k: as_float(v, k, 0.0, 0.9)
    ),
    "split_seed": DatasetOption(0, "seed of the split (independent of the run seed)", as_int),
    "folds": DatasetOption(
        0,
        "k-fold cross-validation by case: the number of folds (0: one hold-out split)",
        lambda v, k: as_int(v, k, 0),
    ),
    "fold": DatasetOption(
        0, "with folds: the fold whose cases are the test split", lambda v, k: as_int(v, k, 0)
    ),
    "slices_per_case": DatasetOption(
        0, "training slices drawn per case (0: all)", lambda v, k: as_int(v, k, 0)
    ),
    "lesion_fraction": DatasetOption(
        None,
        "share of lesion-bearing training slices (none: the natural share)",
        _nullable(lambda v, k: as_float(v, k, 0, 1)),
    ),
    "ct_window": DatasetOption((-1000.0, 1000.0), "HU window mapped to [0, 1]", as_float_pair),
    "percentiles": DatasetOption(
        (0.5, 99.5), "MRI percentiles mapped to 0 and 1, in the foreground", as_float_pair
    ),
    "crop": DatasetOption(True, "crop to the foreground's bounding box", as_bool),
    "crop_margin": DatasetOption(
        2, "voxels kept around the foreground", lambda v, k: as_int(v, k, 0)
    ),
    "fit": DatasetOption(
        "resize", "resize (scale the crop) or pad (only pad)", lambda v, k: str(v).strip().lower()
    ),
    "geometry_tolerance": DatasetOption(
        1e-3, "relative tolerance of the geometry check", lambda v, k: as_float(v, k, 0)
    ),
    "target": DatasetOption(
        None,
        "train one region or label as a binary task",
        _nullable(lambda v, k: str(v).strip()),
    ),
}
#: The default of each option in :data:`OPTIONS`.
DEFAULTS: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}


def resolve_options(
    given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every option of :data:`OPTIONS`, parsed: ``given`` over a reader's ``defaults``
    (e.g. a config file's) over :data:`DEFAULTS`; ``None`` means "not given"."""
    merged = {**DEFAULTS, **{k: v for k, v in (defaults or {}).items() if v is not None}}
    merged.update({k: v for k, v in given.items() if v is not None})
    out = dict(merged)
    for name, option in OPTIONS.items():
        out[name] = option.parse(merged[name], name)
    return out


def check_declared(factory: Any, given: Mapping[str, Any]) -> None:
    """Check the values of ``given`` that a dataset factory declares, before it is built.

    A factory declares its options' checks in a ``declared_options`` attribute
    (name -> :class:`DatasetOption`, e.g. :class:`benchbox.data.synthetic.SyntheticDataset`);
    a bad value is a :class:`ConfigError` naming the option as the user gave it.
    """
    declared = getattr(factory, "declared_options", None) or {}
    for key, value in given.items():
        if key in declared and value is not None:
            declared[key].parse(value, key)
