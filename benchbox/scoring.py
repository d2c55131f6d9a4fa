"""Score folders of result files with benchbox's metrics: the library of ``benchbox evaluate``.

Results made by any tool can be scored: segmentation label files against reference
label files, or fused images against their two sources. Files are matched by name
without the image ending (``case01.nii.gz`` matches ``case01.nii``; ``c01.png`` matches
``c01.tif``), and each case is scored by :mod:`benchbox.metrics.suite`, exactly as
``benchbox run`` scores its own predictions.

Reading rules (also in ``docs/metrics.md``):

* segmentation: a label file holds one integer label per voxel (NIfTI, NRRD, PNG, ...);
  the voxel spacing is the reference file's; a prediction must have the reference's
  size, and a different spacing, origin or direction is reported as a warning;
* fusion: 8-bit images are divided by 255 and 16-bit ones by 65535; float images must
  already lie in ``[0, 1]``; colour images become their luminance
  ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox import atomic
from benchbox.errors import BenchboxError, ConfigError, DataError
from benchbox.metrics.segmentation import DEFAULT_NSD_TOLERANCE
from benchbox.metrics.suite import (
    BRATS_REGIONS,
    check_regions,
    metrics_for,
    score_fusion_case,
    score_segmentation_case,
    summarize,
)

if TYPE_CHECKING:
    import pandas as pd

    from benchbox.data.io import Image
    from benchbox.registry import Entry

#: Region presets accepted by :func:`parse_regions` (``--region brats``).
REGION_PRESETS: dict[str, dict[str, tuple[int, ...]]] = {"brats": BRATS_REGIONS}
#: ITU-R BT.601 luma weights for R, G, B.
BT601 = (0.299, 0.587, 0.114)

Progress = Callable[[str], None]


@dataclass
class Scores:
    """The scores of one folder comparison.

    Attributes:
        task: ``"segmentation"`` or ``"fusion"``.
        per_case: one row per case: ``case_id`` then the metric columns.
        summary: :func:`benchbox.metrics.suite.summarize` of ``per_case``.
        metrics: the metric entries computed (their ``info`` says which way is better).
        settings: what was scored and how (folders, regions, tolerance), for the record.
        regions: the segmentation regions (``{}`` for fusion).
        warnings: notes on the inputs (ignored files, geometry differences).
    """

    task: str
    per_case: pd.DataFrame
    summary: dict[str, float]
    metrics: list[Entry]
    settings: dict[str, Any]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# -- options ---------------------------------------------------------------------------
def _int_list(text: str, what: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what}: no label given")
    return values


def parse_regions(
    labels: str | None = None, regions: Sequence[str] = ()
) -> dict[str, tuple[int, ...]] | None:
    """Turn ``--labels`` and ``--region`` options into ``{region name: labels}``.

    Args:
        labels: ``"1,2,4"``: each label its own region, named ``label1``, ``label2``...
        regions: ``"NAME=1,2,3"`` (a region uniting labels) or a preset name
            (``"brats"``: whole-tumour, tumour-core, enhancing-tumour).

    Returns:
        The regions, or ``None`` when neither option was given (score every label found).

    Raises:
        ConfigError: a malformed option, or one region name given twice.
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
        if spec.strip().lower() in REGION_PRESETS:
            for name, values in REGION_PRESETS[spec.strip().lower()].items():
                add(name, values)
            continue
        name, sep, rest = spec.partition("=")
        if not sep or not name.strip():
            presets = ", ".join(REGION_PRESETS)
            raise ConfigError(
                f"--region {spec!r}: expected NAME=LABEL,LABEL,... (e.g. core=1,3,4) or a "
                f"preset ({presets})"
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
    from benchbox.plugins import get_registry

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


# -- files -----------------------------------------------------------------------------
def find_images(folder: str | Path, role: str) -> dict[str, Path]:
    """``{case name: file}`` for the image files of a folder (not recursive).

    Raises:
        DataError: the folder is missing, holds no image, or two files share a case name.
    """
    from benchbox.data.io import is_image_file, strip_suffix

    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{role} folder {path} does not exist")
    found: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        if not is_image_file(file):
            continue
        case = strip_suffix(file)
        if case in found:
            raise DataError(
                f"{role} folder {path}: {found[case].name} and {file.name} are both case {case!r}"
            )
        found[case] = file
    if not found:
        raise DataError(f"{role} folder {path} holds no image file (NIfTI, PNG, TIFF, ...)")
    return found


def _missing(names: Iterable[str], role: str, folder: Path, other: str) -> DataError:
    names = sorted(names)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return DataError(
        f"{role} folder {folder} has no file for {len(names)} {other} case(s): {shown}"
    )


def _read(path: Path) -> Image:
    from benchbox.data.io import read_image

    return read_image(path)


def read_labels(path: Path) -> tuple[np.ndarray, Image]:
    """A label file as an integer array, and the image it came from."""
    image = _read(path)
    if image.components != 1:
        raise DataError(f"{path}: a label file must have one channel, not {image.components}")
    arr = image.array
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr, image
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise DataError(f"{path}: labels must be integers, got {arr.dtype}")
    rounded = np.rint(arr)
    if not np.array_equal(rounded, arr):
        raise DataError(f"{path}: labels must be integers; the file holds fractional values")
    return rounded.astype(np.int64), image


def read_fusion_image(path: Path) -> np.ndarray:
    """A 2D image as ``float64`` in ``[0, 1]`` (see the module docstring for the rules)."""
    image = _read(path)
    if image.ndim != 2:
        raise DataError(f"{path}: fusion images must be 2D, this one is {image.ndim}D")
    arr = image.array
    if arr.dtype == np.uint8:
        out = arr / 255.0
    elif arr.dtype == np.uint16:
        out = arr / 65535.0
    elif arr.dtype == bool:
        out = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: the image contains NaN or infinite values")
        if out.min() < 0 or out.max() > 1:
            raise DataError(
                f"{path}: a float image must lie in [0, 1], this one spans "
                f"[{out.min():g}, {out.max():g}]; save 8-bit or rescale it"
            )
    else:
        raise DataError(f"{path}: unsupported pixel type {arr.dtype}; use 8- or 16-bit images")
    if image.components in (3, 4):
        out = out[..., :3] @ np.asarray(BT601)
    elif image.components != 1:
        raise DataError(f"{path}: {image.components} channels; expected grey or RGB")
    return out


# -- scoring ---------------------------------------------------------------------------
def _labels_present(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    found: set[int] = set()
    for path in files:
        arr, _ = read_labels(path)
        found.update(int(v) for v in np.unique(arr) if v != 0)
    if not found:
        raise DataError("every reference and prediction is empty: no label to score")
    return {f"label{v}": (v,) for v in sorted(found)}


def score_segmentation_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    regions: Mapping[str, Iterable[int]] | None = None,
    nsd_tolerance: float = DEFAULT_NSD_TOLERANCE,
    metrics: Sequence[Entry] | None = None,
    progress: Progress | None = None,
) -> Scores:
    """Score every reference label file against the prediction of the same name.

    Args:
        pred_dir: folder of predicted label files.
        ref_dir: folder of reference label files; it defines the cases.
        regions: ``{name: labels}``; by default every non-zero label found in the
            files is its own region ``label<k>``.
        nsd_tolerance: NSD tolerance in mm.
        metrics: metric entries; by default every registered segmentation metric.
        progress: called with each case name before it is scored.

    Raises:
        DataError: a folder is missing or empty, a reference has no prediction, a file
            is unreadable or not a label map, or a prediction's size differs.
    """
    from benchbox.data.io import compare_geometry

    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    refs = find_images(ref_dir, "--ref")
    preds = find_images(pred_dir, "--pred")
    missing = set(refs) - set(preds)
    if missing:
        raise _missing(missing, "--pred", pred_dir, "reference")
    notes = []
    extra = sorted(set(preds) - set(refs))
    if extra:
        notes.append(
            f"{len(extra)} prediction(s) without a reference ignored: "
            + ", ".join(extra[:5])
            + (" ..." if len(extra) > 5 else "")
        )
    cases = sorted(refs)
    if regions is None:
        region_labels = _labels_present([refs[c] for c in cases] + [preds[c] for c in cases])
    else:
        region_labels = check_regions(regions)
    entries = list(metrics) if metrics is not None else select_metrics("segmentation")

    rows = []
    for case in cases:
        if progress is not None:
            progress(case)
        ref, ref_img = read_labels(refs[case])
        pred, pred_img = read_labels(preds[case])
        diffs = compare_geometry(ref_img.geometry, pred_img.geometry)
        if ref.shape != pred.shape:
            raise DataError(
                f"{preds[case]}: size {pred.shape} differs from the reference {refs[case]} "
                f"({ref.shape})"
            )
        if diffs:
            notes.append(
                f"{case}: prediction geometry differs from the reference "
                f"({'; '.join(diffs)}); the reference's spacing is used"
            )
        row = score_segmentation_case(
            pred, ref, ref_img.spacing, region_labels, entries, nsd_tolerance=nsd_tolerance
        )
        rows.append({"case_id": case, **row})
    per_case = _table(rows)
    settings = {
        "pred": str(pred_dir),
        "ref": str(ref_dir),
        "regions": {k: list(v) for k, v in region_labels.items()},
        "nsd_tolerance_mm": float(nsd_tolerance),
        "metrics": [e.name for e in entries],
    }
    return Scores(
        "segmentation", per_case, summarize(per_case), entries, settings, region_labels, notes
    )


def score_fusion_folders(
    fused_dir: str | Path,
    a_dir: str | Path,
    b_dir: str | Path,
    metrics: Sequence[Entry] | None = None,
    progress: Progress | None = None,
) -> Scores:
    """Score every fused image against the two sources of the same name.

    Args:
        fused_dir: folder of fused images; it defines the cases.
        a_dir: folder of the first sources.
        b_dir: folder of the second sources.
        metrics: metric entries; by default every registered fusion metric (those too
            large for the images are left out, with a note).
        progress: called with each case name before it is scored.

    Raises:
        DataError: a folder is missing or empty, a fused image has no source, or an
            image is unreadable, not 2D, of another size or out of range.
    """
    import warnings

    fused_dir, a_dir, b_dir = Path(fused_dir), Path(a_dir), Path(b_dir)
    fused = find_images(fused_dir, "--fused")
    sources = {"--a": (a_dir, find_images(a_dir, "--a")), "--b": (b_dir, find_images(b_dir, "--b"))}
    for role, (folder, files) in sources.items():
        missing = set(fused) - set(files)
        if missing:
            raise _missing(missing, role, folder, "fused")
    entries = list(metrics) if metrics is not None else select_metrics("fusion")
    explicit = metrics is not None

    notes: list[str] = []
    rows = []
    for case in sorted(fused):
        if progress is not None:
            progress(case)
        paths = [fused[case], sources["--a"][1][case], sources["--b"][1][case]]
        images = [read_fusion_image(p) for p in paths]
        for path, img in zip(paths[1:], images[1:], strict=True):
            if img.shape != images[0].shape:
                raise DataError(
                    f"{path}: size {img.shape} differs from the fused image {paths[0]} "
                    f"({images[0].shape})"
                )
        use = entries
        if not explicit:
            small = [e for e in entries if int(e.info.get("min_size", 0)) > min(images[0].shape)]
            if small:
                note = (
                    f"images of {images[0].shape[0]}x{images[0].shape[1]} are too small for "
                    + ", ".join(e.name for e in small)
                    + "; left out"
                )
                if note not in notes:
                    notes.append(note)
                use = [e for e in entries if e not in small]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = score_fusion_case(images[0], images[1], images[2], metrics=use)
        rows.append({"case_id": case, **row})
    per_case = _table(rows)
    settings = {
        "fused": str(fused_dir),
        "a": str(a_dir),
        "b": str(b_dir),
        "intensity": "8-bit / 255, 16-bit / 65535, colour -> BT.601 luminance",
        "metrics": [e.name for e in entries],
    }
    return Scores("fusion", per_case, summarize(per_case), entries, settings, {}, notes)


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


# -- output ----------------------------------------------------------------------------
def _atomic_write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise atomic.write_error(exc, path.parent, "creating") from exc
    atomic.write_text(path, text)


def write_scores(scores: Scores, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
    """Write ``per_case.<fmt>`` and ``summary.<fmt>`` (atomically) and return the paths.

    ``csv``: the per-case table, and the summary as ``statistic,value`` rows. ``json``:
    the per-case rows as a list of objects, and ``{"task", "settings", "summary",
    "warnings"}``.
    """
    import pandas as pd

    if fmt not in ("csv", "json"):
        raise ConfigError(f"unknown output format {fmt!r}; use csv or json")
    out = Path(out_dir)
    per_case_path, summary_path = out / f"per_case.{fmt}", out / f"summary.{fmt}"
    if fmt == "csv":
        _atomic_write(per_case_path, scores.per_case.to_csv(index=False, float_format="%.10g"))
        summary = pd.DataFrame(
            {"statistic": list(scores.summary), "value": list(scores.summary.values())}
        )
        _atomic_write(summary_path, summary.to_csv(index=False, float_format="%.10g"))
    else:
        records = scores.per_case.to_dict(orient="records")
        _atomic_write(per_case_path, json.dumps(records, indent=1) + "\n")
        document = {
            "task": scores.task,
            "settings": scores.settings,
            "summary": scores.summary,
            "warnings": scores.warnings,
        }
        _atomic_write(summary_path, json.dumps(document, indent=1) + "\n")
    return [per_case_path, summary_path]


def column_parts(column: str, scores: Scores) -> tuple[str, str]:
    """Split a per-case column into ``(metric column, region)`` (region ``""`` for fusion)."""
    for region in sorted(scores.regions, key=len, reverse=True):
        if column.endswith("_" + region):
            return column[: -len(region) - 1], region
    return column, ""


def metric_entry(column: str, scores: Scores) -> Entry | None:
    """The metric entry a column came from (``ssim_mean`` -> ``ssim``), if known."""
    base, _ = column_parts(column, scores)
    for entry in scores.metrics:
        if base == entry.name or base.startswith(entry.name + "_"):
            return entry
    return None
