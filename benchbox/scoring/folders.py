"""Scoring result files made by any tool (``benchbox evaluate``), and writing the tables.

:func:`score_segmentation_folders` and :func:`score_fusion_folders` read result folders
(:mod:`benchbox.data.folders` gives the reading rules), match them by case name and
score each case through :mod:`benchbox.metrics.suite`; :func:`write_scores` writes the
per-case and summary tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbox.data.folders import (
    LabelCensus,
    find_images,
    match_cases,
    read_fusion_image,
    read_labels,
)
from benchbox.errors import ConfigError, DataError
from benchbox.metrics.segmentation import DEFAULT_NSD_TOLERANCE
from benchbox.metrics.suite import (
    check_regions,
    score_fusion_case,
    score_segmentation_case,
    select_metrics,
)
from benchbox.metrics.summary import Summary, summarize
from benchbox.records import atomic

if TYPE_CHECKING:
    import pandas as pd

    from benchbox.hooks.registry import Entry

__all__ = [
    "Progress",
    "Scores",
    "column_parts",
    "metric_entry",
    "score_fusion_folders",
    "score_segmentation_folders",
    "write_scores",
]

Progress = Callable[[str], None]


@dataclass
class Scores:
    """The scores of one folder comparison.

    Attributes:
        task: ``"segmentation"`` or ``"fusion"``.
        per_case: one row per case: ``case_id`` then the metric columns.
        summary: :func:`benchbox.metrics.summary.summarize` of ``per_case``.
        metrics: the metric entries computed (their ``info`` says which way is better).
        settings: what was scored and how (folders, regions, tolerance), for the record.
        regions: the segmentation regions (``{}`` for fusion).
        warnings: notes on the inputs (ignored files, geometry differences).
        missing: cases without a result file, left out (``allow_missing``).
    """

    task: str
    per_case: pd.DataFrame
    summary: Summary
    metrics: list[Entry]
    settings: dict[str, Any]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


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
    *,
    allow_missing: bool = False,
    strict_labels: bool = False,
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
        allow_missing: score the references that have a prediction and list the others
            (:attr:`Scores.missing`, ``n_missing``) instead of failing.
        strict_labels: ``regions`` declare every label the files may hold (a preset):
            another label is an error instead of a note.

    Raises:
        DataError: a folder is missing or empty, a reference has no prediction, a file
            is unreadable or not a label map, a prediction's size differs, a region is
            in no file, or (``strict_labels``) a label is outside the regions.
    """
    from benchbox.data.io import compare_geometry

    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    refs = find_images(ref_dir, "--ref")
    preds = find_images(pred_dir, "--pred")
    cases, missing, notes = match_cases(
        refs, preds, role="--pred", folder=pred_dir, what="reference", allow_missing=allow_missing
    )
    if regions is None:
        region_labels = _labels_present([refs[c] for c in cases] + [preds[c] for c in cases])
    else:
        region_labels = check_regions(regions)
    entries = list(metrics) if metrics is not None else select_metrics("segmentation")

    census = LabelCensus()
    rows = []
    for case in cases:
        if progress is not None:
            progress(case)
        ref, ref_img = read_labels(refs[case])
        pred, pred_img = read_labels(preds[case])
        diffs = compare_geometry(ref_img.geometry, pred_img.geometry)
        if ref.shape != pred.shape:
            # compare_geometry's phrases: sizes and spacings alike in (x, y, z) order.
            raise DataError(
                f"{preds[case]}: its grid does not match the reference {refs[case]}: "
                + "; ".join(diffs or [f"size {_xyz(pred.shape)} vs {_xyz(ref.shape)}"])
            )
        if diffs:
            notes.append(
                f"{case}: prediction geometry differs from the reference "
                f"({'; '.join(diffs)}); the reference's spacing is used"
            )
        census.add(ref, refs[case])
        census.add(pred, preds[case])
        row = score_segmentation_case(
            pred, ref, ref_img.spacing, region_labels, entries, nsd_tolerance=nsd_tolerance
        )
        rows.append({"case_id": case, **row})
    if regions is not None:
        notes += census.check(region_labels, strict=strict_labels)
    per_case = _table(rows)
    settings = {
        "pred": str(pred_dir),
        "ref": str(ref_dir),
        "regions": {k: list(v) for k, v in region_labels.items()},
        "nsd_tolerance_mm": float(nsd_tolerance),
        "metrics": [e.name for e in entries],
    }
    return Scores(
        "segmentation",
        per_case,
        _summary(per_case, missing, allow_missing),
        entries,
        settings,
        region_labels,
        notes,
        missing,
    )


def _xyz(shape: tuple[int, ...], axes: bool = True) -> str:
    """An array shape, ``(z,) y, x``, as image headers give sizes: ``(x, y) (60, 64)``
    (without the axes: ``(60, 64)``)."""
    names = "(x, y) " if len(shape) == 2 else "(x, y, z) "
    return f"{names if axes else ''}({', '.join(str(n) for n in reversed(shape))})"


def _summary(per_case: pd.DataFrame, missing: list[str], allow_missing: bool) -> Summary:
    summary = summarize(per_case)
    if allow_missing:
        summary["n_missing"] = float(len(missing))
    return summary


def score_fusion_folders(
    fused_dir: str | Path,
    a_dir: str | Path,
    b_dir: str | Path,
    metrics: Sequence[Entry] | None = None,
    progress: Progress | None = None,
    *,
    allow_missing: bool = False,
) -> Scores:
    """Score the fused image of every source pair against its two sources.

    Args:
        fused_dir: folder of fused images.
        a_dir: folder of the first sources; with ``b_dir`` it defines the cases (the
            names in both).
        b_dir: folder of the second sources.
        metrics: metric entries; by default every registered fusion metric (those too
            large for the images are left out, with a note).
        progress: called with each case name before it is scored.
        allow_missing: score the pairs that have a fused image and list the others
            (:attr:`Scores.missing`, ``n_missing``) instead of failing.

    Raises:
        DataError: a folder is missing or empty, a source pair has no fused image, a
            fused image has only one source, or an image is unreadable, not 2D, of
            another size or out of range.
    """
    import warnings

    fused_dir, a_dir, b_dir = Path(fused_dir), Path(a_dir), Path(b_dir)
    fused = find_images(fused_dir, "--fused")
    a_files, b_files = find_images(a_dir, "--a"), find_images(b_dir, "--b")
    for role, folder, files, other in (
        ("--a", a_dir, a_files, b_files),
        ("--b", b_dir, b_files, a_files),
    ):
        lacking = sorted(c for c in fused if c in other and c not in files)
        if lacking:
            raise DataError(
                f"{role} folder {folder} has no file for {len(lacking)} fused case(s) "
                f"whose other source exists: {', '.join(lacking[:5])}"
            )
    pairs = {c: a_files[c] for c in sorted(set(a_files) & set(b_files))}
    if not pairs:
        raise DataError(f"--a folder {a_dir} and --b folder {b_dir} share no case name")
    cases, missing, notes = match_cases(
        pairs, fused, role="--fused", folder=fused_dir, what="source", allow_missing=allow_missing
    )
    entries = list(metrics) if metrics is not None else select_metrics("fusion")
    explicit = metrics is not None

    rows = []
    for case in cases:
        if progress is not None:
            progress(case)
        paths = [fused[case], a_files[case], b_files[case]]
        images = [read_fusion_image(p) for p in paths]
        for path, img in zip(paths[1:], images[1:], strict=True):
            if img.shape != images[0].shape:
                raise DataError(
                    f"{path}: size {_xyz(img.shape)} differs from the fused image "
                    f"{paths[0]} {_xyz(images[0].shape, axes=False)}"
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
        "intensity": "colour -> BT.601 luma rounded to the bit depth; 8-bit / 255, 16-bit / 65535",
        "metrics": [e.name for e in entries],
    }
    summary = _summary(per_case, missing, allow_missing)
    return Scores("fusion", per_case, summary, entries, settings, {}, notes, missing)


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
    "warnings", "missing"}``. Cases left out for want of a result file are also listed
    in ``missing.<fmt>`` (a ``case_id`` column, or a JSON list).
    """
    import pandas as pd

    if fmt not in ("csv", "json"):
        raise ConfigError(f"unknown output format {fmt!r}; use csv or json")
    out = Path(out_dir)
    per_case_path, summary_path = out / f"per_case.{fmt}", out / f"summary.{fmt}"
    missing_path = out / f"missing.{fmt}"
    if fmt == "csv":
        _atomic_write(per_case_path, scores.per_case.to_csv(index=False, float_format="%.10g"))
        summary = pd.DataFrame(
            {"statistic": list(scores.summary), "value": list(scores.summary.values())}
        )
        _atomic_write(summary_path, summary.to_csv(index=False, float_format="%.10g"))
        if scores.missing:
            table = pd.DataFrame({"case_id": scores.missing})
            _atomic_write(missing_path, table.to_csv(index=False))
    else:
        records = scores.per_case.to_dict(orient="records")
        _atomic_write(per_case_path, json.dumps(records, indent=1) + "\n")
        document = {
            "task": scores.task,
            "settings": scores.settings,
            "summary": scores.summary,
            "warnings": scores.warnings,
            "missing": scores.missing,
        }
        _atomic_write(summary_path, json.dumps(document, indent=1) + "\n")
        if scores.missing:
            _atomic_write(missing_path, json.dumps(scores.missing, indent=1) + "\n")
    if scores.missing:
        return [per_case_path, summary_path, missing_path]
    missing_path.unlink(missing_ok=True)  # from an earlier run into the same folder
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
