"""The contracts of metrics and region presets (``register_metrics``,
``register_regions`` in :mod:`benchbox.hookspecs`)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from benchbox import Entry, errors
from benchbox.testing.contracts._common import build, calling
from benchbox.testing.result import ContractError

__all__ = ["check_metric", "check_region"]

_TASKS = ("fusion", "segmentation")
#: Optional info keys and the type each must have.
_OPTIONAL_INFO: Mapping[str, type] = {
    "unit": str,
    "min_size": int,
    "headline": int,
    "headline_key": str,
}
#: Options passed to a segmentation metric whose signature declares them.
_OPTIONS = {"tolerance": 1.0}


def check_metric(entry: Entry) -> str:
    """A metric declares its ``task`` and ``higher_is_better`` (and optional info of the
    documented types), and returns finite numbers, or a dict of them, for every input of
    its task: random, identical and all-zero images for fusion; random, equal, one-sided
    and empty masks, 2D and 3D, with anisotropic spacing for segmentation. Given inputs
    of two shapes it returns numbers or raises :class:`benchbox.errors.MetricInputError`.
    """
    _check_info(entry)
    cases = _fusion_cases(entry) if entry.info["task"] == "fusion" else _segmentation_cases()
    for what, args in cases:
        with calling(entry, what):
            result = _call(entry, *args)
        _check_result(entry, result, what)
    what, args = _mismatched(entry)
    try:
        result = _call(entry, *args)
    except errors.MetricInputError:
        return ""
    except Exception as exc:
        raise ContractError(
            f"{what} raised {errors.describe(exc, entry.package)}; expected MetricInputError"
        ) from exc
    _check_result(entry, result, what)
    return ""


def _check_info(entry: Entry) -> None:
    info = entry.info
    if info.get("task") not in _TASKS:
        raise ContractError(f"info task={info.get('task')!r}; expected one of {', '.join(_TASKS)}")
    if not isinstance(info.get("higher_is_better"), bool):
        raise ContractError(
            f"info higher_is_better={info.get('higher_is_better')!r}; expected True or False"
        )
    for key, kind in _OPTIONAL_INFO.items():
        value = info.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ContractError(f"info {key}={value!r}; expected a {kind.__name__}")
        if isinstance(value, int) and value < 1:
            raise ContractError(f"info {key}={value!r}; expected an int >= 1")


def _call(entry: Entry, *args: Any) -> Any:
    """Call the metric as the suite does: options only if its signature declares them."""
    try:
        params = inspect.signature(entry.factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    options = {k: v for k, v in _OPTIONS.items() if takes_all or k in params}
    if entry.info.get("task") != "segmentation":
        options = {}
    return entry.factory(*args, **options)


def _fusion_cases(entry: Entry) -> Iterator[tuple[str, tuple[Any, ...]]]:
    rng = np.random.default_rng(0)
    size = max(int(entry.info.get("min_size", 0)), 32)
    a, b = rng.random((size, size)), rng.random((size, size))
    zero = np.zeros_like(a)
    yield f"metric(fused, a, b) on random {a.shape} images", ((a + b) / 2, a, b)
    yield f"metric(fused, a, b) on three identical {a.shape} images", (a, a, a)
    yield f"metric(fused, a, b) on all-zero {a.shape} images", (zero, zero, zero)


def _segmentation_cases() -> Iterator[tuple[str, tuple[Any, ...]]]:
    rng = np.random.default_rng(0)
    for shape, spacing in (((12, 10), (0.5, 2.0)), ((6, 8, 7), (2.0, 1.0, 0.7))):
        mask = rng.random(shape) > 0.5
        empty = np.zeros(shape, bool)
        for label, pred, ref in (
            ("disjoint", mask, ~mask),
            ("equal", mask, mask),
            ("empty pred", empty, mask),
            ("empty ref", mask, empty),
            ("both empty", empty, empty),
        ):
            yield f"metric(pred, ref, spacing) on {label} {shape} masks", (pred, ref, spacing)


def _mismatched(entry: Entry) -> tuple[str, tuple[Any, ...]]:
    rng = np.random.default_rng(1)
    if entry.info["task"] == "fusion":
        size = max(int(entry.info.get("min_size", 0)), 32)
        a = rng.random((size, size))
        return "metric(fused, a, b) with b of another size", (a, a, rng.random((size, size + 1)))
    mask = rng.random((8, 8)) > 0.5
    return "metric(pred, ref, spacing) with ref of another shape", (
        mask,
        rng.random((8, 9)) > 0.5,
        (1.0, 1.0),
    )


def _check_result(entry: Entry, result: Any, what: str) -> None:
    if isinstance(result, Mapping):
        if not result:
            raise ContractError(f"{what} returned an empty dict")
        items = list(result.items())
        key = entry.info.get("headline_key")
        if key is not None and key not in result:
            raise ContractError(f"{what} returned no key {key!r} (info headline_key)")
    else:
        items = [(None, result)]
        if entry.info.get("headline_key") is not None:
            raise ContractError(f"{what} returned a number, but info names a headline_key")
    for key, value in items:
        where = what if key is None else f"{what}, key {key!r},"
        if key is not None and (not isinstance(key, str) or not key):
            raise ContractError(f"{what} returned the key {key!r}; keys must be non-empty str")
        if not isinstance(value, float | np.floating):
            raise ContractError(
                f"{where} returned {type(value).__name__} {value!r}; expected a float"
            )
        if not math.isfinite(float(value)):
            raise ContractError(f"{where} returned {float(value)}; expected a finite number")


def check_region(entry: Entry) -> str:
    """A region preset's ``factory()`` returns ``{region name: labels}``: a non-empty
    mapping of names usable as column suffixes to non-empty tuples of integer labels."""
    from benchbox.metrics.suite import check_regions

    regions = build(entry)
    try:
        check_regions(regions)
    except errors.MetricInputError as exc:
        raise ContractError(f"factory() returned invalid regions: {exc}") from exc
    return ""
