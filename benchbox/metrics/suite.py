"""Score one case with every registered metric of a task, and summarise a table of cases.

The runner and ``benchbox evaluate`` both score through these three functions, so a
metric a plugin registers lands in every table with the same column name:

* :func:`score_fusion_case` -> ``{"en": ..., "ssim_a": ..., "ssim_mean": ...}``
* :func:`score_segmentation_case` -> ``{"dice_lesion": ..., "hd95_lesion": ...,
  "ref_empty_lesion": 0.0, "pred_empty_lesion": 0.0}``
* :func:`summarize` -> the mean and standard deviation of every metric column and the
  number of empty-mask cases per region.

Which metrics and regions are scored is chosen here too: :func:`metrics_for` and
:func:`select_metrics` (``--metric``), :func:`check_regions`, :func:`parse_regions`
(``--labels``, ``--region``) and :func:`region_preset` (the presets plugins register).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.errors import (
    BenchboxError,
    ConfigError,
    MetricInputError,
    PluginBugError,
    PluginError,
)
from benchbox.hooks.registry import is_out_of_memory, plugin_bug
from benchbox.metrics._checks import check_images, check_spacing, check_tolerance, to_numpy
from benchbox.metrics._share import share_computations
from benchbox.metrics.failures import MetricFailures
from benchbox.metrics.segmentation import DEFAULT_NSD_TOLERANCE

if TYPE_CHECKING:
    from benchbox.hooks.registry import Entry, Registry

__all__ = [
    "EMPTY_FLAGS",
    "check_regions",
    "fusion_metrics_for_shape",
    "headline_metrics",
    "metrics_for",
    "parse_regions",
    "region_preset",
    "score_fusion_case",
    "score_segmentation_case",
    "select_metrics",
]

#: Per-case flags (0 or 1) that :func:`summarize` counts instead of averaging.
EMPTY_FLAGS = ("ref_empty", "pred_empty")
_REGION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def metrics_for(task: str, registry: Registry | None = None) -> list[Entry]:
    """Every registered metric whose ``info["task"]`` is ``task``, sorted by name.

    Raises:
        DuplicatePluginError: two plugins registered one of these metric names.
    """
    if registry is None:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
    names = dict.fromkeys(e.name for e in registry.list("metric") if e.info.get("task") == task)
    return [registry.get("metric", name) for name in names]


def headline_metrics(task: str, registry: Registry | None = None, top: int = 0) -> list[Entry]:
    """The metrics of ``task`` that tables show by default, in their ``headline`` order
    (``info["headline"]``, 1 first; see ``register_metrics``); with ``top``, only those
    placed ``1..top``. The first one is what a run selects on by default
    (``--select auto``) and what tables lead with: no metric name is written into the
    core."""
    ranked = [e for e in metrics_for(task, registry) if isinstance(e.info.get("headline"), int)]
    ranked.sort(key=lambda e: int(e.info["headline"]))
    return [e for e in ranked if not top or int(e.info["headline"]) <= top]


def fusion_metrics_for_shape(
    shape: tuple[int, ...], registry: Registry | None = None
) -> tuple[list[Entry], list[Entry]]:
    """The registered fusion metrics that can score images of ``shape``, and those left
    out because their ``min_size`` exceeds the image (MS-SSIM below 176x176)."""
    entries = metrics_for("fusion", registry)
    too_small = [e for e in entries if int(e.info.get("min_size", 0)) > min(shape)]
    return [e for e in entries if e not in too_small], too_small


def _columns(entry: Entry, value: Any, suffix: str = "") -> dict[str, float]:
    """The named, checked columns of one metric result (a number or a dict of them)."""
    items = value.items() if isinstance(value, Mapping) else [(None, value)]
    out: dict[str, float] = {}
    for key, v in items:
        column = entry.name if key is None else f"{entry.name}_{key}"
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise PluginError(
                f"metric {entry.name!r} ({entry.provider}) returned {v!r} for {column!r}; "
                "a metric must return finite numbers"
            )
        out[column + suffix] = number
    return out


def _call(entry: Entry, *args: Any, **options: Any) -> Any:
    """Call a metric with the options its signature declares (e.g. ``tolerance``)."""
    if options:
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(entry.factory).parameters
        except (TypeError, ValueError):
            params = {}
        takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
        options = {k: v for k, v in options.items() if takes_all or k in params}
    return entry.factory(*args, **options)


def _score(
    entry: Entry, failures: MetricFailures | None, suffix: str, *args: Any, **options: Any
) -> dict[str, float]:
    """One metric's columns; a metric that raises is the plugin's bug, or, given
    ``failures``, recorded there and left out."""
    if failures is not None and entry in failures:
        return {}
    try:
        out = _columns(entry, _call(entry, *args, **options), suffix)
    except Exception as exc:
        if failures is not None:
            failures.failed(entry, exc)
            return {}
        if isinstance(exc, BenchboxError) or is_out_of_memory(exc):
            raise
        raise plugin_bug(entry, exc, "while scoring") from exc
    if failures is not None:
        failures.scored(entry, set(out))
    return out


def score_fusion_case(
    fused: Any,
    a: Any,
    b: Any,
    metrics: Sequence[Entry] | None = None,
    failures: MetricFailures | None = None,
) -> dict[str, float]:
    """Every fusion metric of one fused image and its two sources, as flat columns.

    Args:
        fused: the fused image, 2D float in ``[0, 1]`` (NumPy array or CPU tensor).
        a: source ``A``, same shape.
        b: source ``B``, same shape.
        metrics: the registry entries to compute; by default every registered metric
            with ``task="fusion"``, skipping (with a warning) those whose ``min_size``
            exceeds the image, such as MS-SSIM below 176x176. A metric named here
            explicitly is always computed and raises on a small image.
        failures: shared by the cases of one evaluation: a metric that raises is
            recorded there and left out instead of failing (see :class:`MetricFailures`).

    Returns:
        ``{column: value}``: a metric named ``m`` gives column ``m``, or ``m_<key>`` for
        each key of a dict result (SSIM gives ``ssim_a``, ``ssim_b``, ``ssim_mean``,
        ``ssim_sum``).

    Raises:
        MetricInputError: the images are not 2D, differ in shape, hold NaN or leave
            ``[0, 1]``.
        PluginError: without ``failures``, a metric returned a value that is not a
            finite number, or raised (:class:`PluginBugError` naming it).
    """
    out: dict[str, float] = {}
    with share_computations():  # the metrics reuse these checks
        f, a_, b_ = check_images(fused, a, b)
        if metrics is None:
            entries, too_small = fusion_metrics_for_shape(f.shape)
            if too_small:
                warnings.warn(
                    f"images of {f.shape[0]}x{f.shape[1]} are too small for "
                    + ", ".join(f"{e.name} (needs {e.info['min_size']})" for e in too_small)
                    + "; those columns are left out",
                    stacklevel=2,
                )
        else:
            entries = list(metrics)
        for entry in entries:
            out.update(_score(entry, failures, "", f, a_, b_))
    return out


def check_regions(regions: Mapping[str, Iterable[int]]) -> dict[str, tuple[int, ...]]:
    """Validate ``{region name: labels}``: names usable as column suffixes, int labels."""
    if not isinstance(regions, Mapping) or not regions:
        raise MetricInputError(
            "regions must be a non-empty mapping of region name to labels, e.g. {'lesion': (1,)}"
        )
    out: dict[str, tuple[int, ...]] = {}
    for name, labels in regions.items():
        if not isinstance(name, str) or not _REGION_NAME.match(name):
            raise MetricInputError(
                f"region name {name!r} must be letters, digits, '.', '_' or '-' (it "
                "becomes part of the column names)"
            )
        items = (labels,) if isinstance(labels, int | np.integer) else labels
        try:
            values = tuple(items)
        except TypeError:
            values = ()
        if not values or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values
        ):
            raise MetricInputError(
                f"region {name!r}: labels must be a non-empty tuple of integers, got {labels!r}"
            )
        out[name] = tuple(int(v) for v in values)
    return out


def _int_list(text: str, what: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what}: no label given")
    return values


def region_preset(spec: str, registry: Registry | None = None) -> dict[str, tuple[int, ...]]:
    """The regions of the preset a plugin registered as ``spec`` (``--region brats``).

    Raises:
        ConfigError: no preset has that name (the option was probably meant as
            ``NAME=LABEL,...``); the message lists the presets.
        PluginBugError: the preset's factory returned invalid regions.
    """
    if registry is None:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
    name = spec.strip().lower()
    if ("region", name) not in registry:
        import difflib

        names = [e.name for e in registry.list("region")]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"--region {spec!r}: {hint}expected NAME=LABEL,LABEL,... (e.g. core=1,3,4) or a "
            f"region preset ({', '.join(names) or 'none is registered'}; see "
            "`benchbox plugins --kind region`)"
        )
    entry = registry.get("region", name)
    try:
        return check_regions(entry.build())
    except MetricInputError as exc:
        raise PluginBugError(
            f"region preset {entry.name!r} of plugin {entry.provider} is invalid: {exc}; "
            "this is a bug in the plugin"
        ) from None


def parse_regions(
    labels: str | None = None, regions: Sequence[str] = (), registry: Registry | None = None
) -> dict[str, tuple[int, ...]] | None:
    """Turn ``--labels`` and ``--region`` options into ``{region name: labels}``.

    Args:
        labels: ``"1,2,4"``: each label its own region, named ``label1``, ``label2``...
        regions: ``"NAME=1,2,3"`` (a region uniting labels) or the name of a region
            preset a plugin registered (:func:`region_preset`; the built-in ``brats``:
            whole-tumour, tumour-core, enhancing-tumour).
        registry: where presets are looked up (default: the installed plugins).

    Returns:
        The regions, or ``None`` when neither option was given (score every label found).

    Raises:
        ConfigError: a malformed option, an unknown preset, or one region name given
            twice.
    """
    out: dict[str, tuple[int, ...]] = {}

    def add(name: str, values: tuple[int, ...]) -> None:
        if name in out:
            raise ConfigError(f"region {name!r} is given twice")
        out[name] = values

    if labels:
        for value in _int_list(labels, "--labels"):
            add(f"label{value}", (value,))
    for spec in regions:
        name, sep, rest = spec.partition("=")
        if not sep:
            for preset_name, values in region_preset(spec, registry).items():
                add(preset_name, values)
            continue
        if not name.strip():
            raise ConfigError(
                f"--region {spec!r}: expected NAME=LABEL,LABEL,... (e.g. core=1,3,4) or a "
                "region preset"
            )
        add(name.strip(), _int_list(rest, f"--region {spec!r}"))
    if not out:
        return None
    try:
        return check_regions(out)
    except BenchboxError as exc:
        raise ConfigError(str(exc)) from None


def select_metrics(task: str, names: Sequence[str] = ()) -> list[Entry]:
    """The registered metrics of ``task``, or only those named (``--metric``)."""
    from benchbox.hooks.manager import get_registry

    registry = get_registry()
    if not names:
        entries = metrics_for(task, registry)
        if not entries:
            raise ConfigError(f"no {task} metric is registered (see `benchbox plugins -k metric`)")
        return entries
    chosen = []
    for name in names:
        entry = registry.get("metric", name)
        if entry.info.get("task") != task:
            raise ConfigError(f"metric {name!r} is a {entry.info.get('task')} metric, not {task}")
        chosen.append(entry)
    return chosen


def _check_labels(name: str, x: Any) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim not in (2, 3):
        raise MetricInputError(f"{name} must be a 2D or 3D label array, got shape {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise MetricInputError(
            f"{name} must hold integer labels, got dtype {arr.dtype} (round or cast it first)"
        )
    return arr


def _region_mask(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    if len(values) == 1:
        return labels == values[0]
    return np.isin(labels, values)


def score_segmentation_case(
    pred: Any,
    ref: Any,
    spacing: Sequence[float],
    regions: Mapping[str, Iterable[int]],
    metrics: Sequence[Entry] | None = None,
    nsd_tolerance: float = DEFAULT_NSD_TOLERANCE,
    failures: MetricFailures | None = None,
) -> dict[str, float]:
    """Every segmentation metric of one case, per region, as flat columns.

    Args:
        pred: predicted label array, 2D or 3D, integer (or bool).
        ref: reference label array of the same shape.
        spacing: voxel size in mm per array axis, in the arrays' axis order.
        regions: ``{name: labels}``; each region is the union of its labels, e.g.
            ``{"lesion": (1,)}`` or a preset (:func:`region_preset`).
        metrics: the registry entries to compute; by default every registered metric
            with ``task="segmentation"``.
        nsd_tolerance: the NSD tolerance in mm, passed as ``tolerance=`` to every metric
            whose signature takes a ``tolerance`` parameter.
        failures: as for :func:`score_fusion_case`.

    Returns:
        ``{column: value}`` with, per region ``r``, ``<metric>_<r>`` for each metric (or
        ``<metric>_<key>_<r>`` for each key of a dict result) and the flags
        ``ref_empty_<r>`` and ``pred_empty_<r>`` (1.0 if that mask is empty, else 0.0).

    Raises:
        MetricInputError: shapes differ, labels are not integers, the spacing has the
            wrong length, or a region is invalid.
        PluginError: without ``failures``, a metric returned a value that is not a
            finite number, or raised (:class:`PluginBugError` naming it).
    """
    p, r = _check_labels("pred", pred), _check_labels("ref", ref)
    if p.shape != r.shape:
        raise MetricInputError(f"pred has shape {p.shape} but ref has shape {r.shape}")
    sp = check_spacing(spacing, p.ndim)
    tolerance = check_tolerance(nsd_tolerance)
    region_labels = check_regions(regions)
    entries = metrics_for("segmentation") if metrics is None else list(metrics)

    out: dict[str, float] = {}
    for name, values in region_labels.items():
        pm, rm = _region_mask(p, values), _region_mask(r, values)
        suffix = f"_{name}"
        with share_computations():
            for entry in entries:
                out.update(_score(entry, failures, suffix, pm, rm, sp, tolerance=tolerance))
        out[f"ref_empty{suffix}"] = float(not rm.any())
        out[f"pred_empty{suffix}"] = float(not pm.any())
    return out
