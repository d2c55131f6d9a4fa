"""``benchbox evaluate``: score result files made by any tool with benchbox's metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err

if TYPE_CHECKING:
    from benchbox.scoring import Scores

__all__ = ["app", "fusion", "seg"]

app = typer.Typer(
    help="Score segmentations or fused images made by any tool with benchbox's metrics.",
    no_args_is_help=True,
)

_OUT = typer.Option(
    None,
    "--out",
    "-o",
    help="Folder for the per_case and summary files (default benchbox-out/evaluate/seg or "
    "benchbox-out/evaluate/fusion).",
)
_FORMAT = typer.Option("csv", "--format", help="csv or json.")
_METRIC = typer.Option([], "--metric", "-m", help="Only this metric (repeatable); default all.")
_ALLOW_MISSING = typer.Option(
    False,
    "--allow-missing",
    help="Score the cases that have a result file and list the others (table, summary and "
    "missing.<format>), instead of failing.",
)


def _score(run: Callable[[Callable[[str], None] | None], Scores], total: int) -> Scores:
    """Run a scoring function with a progress bar on an interactive terminal."""
    if not console_err.is_terminal:
        return run(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("[bold]scoring[/] {task.fields[case]:<24}"), BarColumn(),
               MofNCompleteColumn())  # fmt: skip
    with Progress(*columns, console=console_err, transient=True) as bar:
        task = bar.add_task("score", total=total, case="")
        done = [-1]

        def step(case: str) -> None:
            done[0] += 1
            bar.update(task, completed=done[0], case=case)

        return run(step)


def _render(scores: Scores, paths: list[Path]) -> None:
    from benchbox.metrics.summary import Summary
    from benchbox.scoring import column_parts, metric_entry

    summary = Summary(scores.summary)
    title = f"benchbox evaluate {scores.task}: {int(summary['n_cases'])} case(s)"
    if scores.missing:
        title += f" scored, {len(scores.missing)} missing"
    if scores.task == "segmentation":
        title += f", NSD tolerance {scores.settings['nsd_tolerance_mm']:g} mm"
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    table = Table()
    for name, justify in (
        ("metric", "left"),
        ("region", "left"),
        ("mean", "right"),
        ("std", "right"),
        ("better", "center"),
        ("unit", "left"),
    ):
        if name == "region" and scores.task != "segmentation":
            continue
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    columns = [c for c in scores.per_case.columns if c != "case_id" and c in summary]
    regions = list(scores.regions)

    def key(column: str) -> tuple[int, int, str]:
        # Headline metrics first, in their registered place, then the others by name.
        entry = metric_entry(column, scores)
        place = entry.info.get("headline") if entry is not None else None
        rank = place if isinstance(place, int) else 10**6
        region = column_parts(column, scores)[1]
        return (regions.index(region) if region in regions else 0, rank, column)

    columns.sort(key=key)
    for column in columns:
        base, region = column_parts(column, scores)
        entry = metric_entry(column, scores)
        better = "" if entry is None else ("↑" if entry.info.get("higher_is_better") else "↓")
        unit = "" if entry is None else str(entry.info.get("unit", ""))
        row = [base] + ([region] if scores.task == "segmentation" else [])
        row += [f"{summary[column]:.4f}", f"{summary.std(column) or 0.0:.4f}", better, unit]
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    empty_counts = summary.empty_counts()
    for region in scores.regions:
        empty = empty_counts.get(region, {})
        ref, pred, both = (empty.get(k, 0) for k in ("ref", "pred", "both"))
        if ref or pred:
            console.print(
                f"[yellow]empty masks[/] {escape(region)}: reference empty in {ref}, "
                f"prediction empty in {pred}, both in {both} case(s); scored by the "
                "empty-mask rule (docs/metrics.md)",
                highlight=False,
            )
    if scores.missing:
        shown = ", ".join(scores.missing[:20]) + (" ..." if len(scores.missing) > 20 else "")
        console.print(
            f"[yellow]missing[/] {len(scores.missing)} case(s) without a result file, not "
            f"scored: {escape(shown)}",
            highlight=False,
        )
    for note in scores.warnings:
        console_err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print("wrote " + ", ".join(escape(str(p)) for p in paths), highlight=False)


@app.command("seg")
def seg(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label files."),
    ref: Path = typer.Option(..., "--ref", help="Folder of reference label files (the cases)."),
    labels: str | None = typer.Option(
        None, "--labels", "-l", help="Labels to score, each its own region: '1,2,4'."
    ),
    region: list[str] = typer.Option(
        [],
        "--region",
        "-r",
        help="A region uniting labels, NAME=1,2,3 (repeatable), or a region preset such as "
        "'brats' (whole-tumour, tumour-core, enhancing-tumour; `benchbox plugins -k region`). "
        "Default: every label found, each on its own.",
    ),
    nsd_tolerance: float = typer.Option(1.0, "--nsd-tolerance", help="NSD tolerance in mm."),
    metric: list[str] = _METRIC,
    out: Path | None = _OUT,
    fmt: str = _FORMAT,
    allow_missing: bool = _ALLOW_MISSING,
) -> None:
    """Score label files (NIfTI, NRRD, PNG...) matched by name; spacing from the files."""
    from benchbox.data.io import is_image_file
    from benchbox.metrics.suite import parse_regions, select_metrics
    from benchbox.scoring import score_segmentation_folders, write_scores

    regions = parse_regions(labels, region)
    strict = any("=" not in r for r in region)  # a preset declares the files' full label set
    entries = select_metrics("segmentation", metric)
    total = sum(1 for p in ref.iterdir() if is_image_file(p)) if ref.is_dir() else 0
    scores = _score(
        lambda step: score_segmentation_folders(
            pred,
            ref,
            regions,
            nsd_tolerance,
            entries,
            step,
            allow_missing=allow_missing,
            strict_labels=strict,
        ),
        total,
    )
    paths = write_scores(scores, out or Path("benchbox-out/evaluate/seg"), fmt)
    _render(scores, paths)


@app.command("fusion")
def fusion(
    fused: Path = typer.Option(..., "--fused", help="Folder of fused images."),
    a: Path = typer.Option(
        ..., "--a", help="Folder of the first source images (with --b: the cases)."
    ),
    b: Path = typer.Option(..., "--b", help="Folder of the second source images."),
    metric: list[str] = _METRIC,
    out: Path | None = _OUT,
    fmt: str = _FORMAT,
    allow_missing: bool = _ALLOW_MISSING,
) -> None:
    """Score fused images against their two sources, matched by file name (8-bit / 255)."""
    from benchbox.data.io import is_image_file
    from benchbox.metrics.suite import select_metrics
    from benchbox.scoring import score_fusion_folders, write_scores

    entries = select_metrics("fusion", metric) if metric else None
    total = sum(1 for p in fused.iterdir() if is_image_file(p)) if fused.is_dir() else 0
    scores = _score(
        lambda step: score_fusion_folders(fused, a, b, entries, step, allow_missing=allow_missing),
        total,
    )
    paths = write_scores(scores, out or Path("benchbox-out/evaluate/fusion"), fmt)
    _render(scores, paths)
