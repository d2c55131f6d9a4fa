"""``benchbox compare LEADERBOARD --metric M``: paired, case-by-case method comparison."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, warn

__all__ = ["FORMATS", "compare"]

FORMATS = ("rich", "md", "csv", "json")


def compare(
    paths: list[str] = typer.Argument(
        ...,
        metavar="LEADERBOARD...",
        help="A leaderboard CSV with its .cases.csv beside it; several of one dataset "
        "(e.g. a 2D and a 3D reference) are compared as one.",
    ),
    metric: str = typer.Option(..., "--metric", "-m", help="Per-case metric, e.g. dice_lesion."),
    by: str = typer.Option("fusion,segmenter", "--by", help="Columns that define a method."),
    reference: str | None = typer.Option(
        None, "--reference", help="Compare every method with this one only (e.g. mean)."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", metavar="RUN_ID", help="Leave this run out (repeatable)."
    ),
    data_seed: int | None = typer.Option(
        None, "--data-seed", help="Compare the runs of this data seed only."
    ),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich, md, csv or json."),
    table: str | None = typer.Option(
        None, "--table", help="methods or pairs only (csv prints one table; default methods)."
    ),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples of the cases."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level after Holm."),
    higher: bool | None = typer.Option(
        None,
        "--higher-is-better/--lower-is-better",
        help="The metric's direction; default from the metric registry.",
        show_default=False,
    ),
) -> None:
    """Compare methods case by case: paired bootstrap CIs, Wilcoxon + Holm, rank stability."""
    import json

    from benchbox.analysis.compare import compare as run_compare
    from benchbox.errors import ConfigError
    from benchbox.report import tables

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if table not in (None, "methods", "pairs"):
        raise ConfigError(f"--table {table!r} is not methods or pairs")
    result = run_compare(
        paths[0] if len(paths) == 1 else paths,
        metric,
        by=by.split(","),
        reference=reference,
        resamples=resamples,
        seed=seed,
        alpha=alpha,
        higher_is_better=higher,
        exclude=exclude or (),
        data_seed=data_seed,
    )
    for warning in result.warnings:
        warn(warning)
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    if fmt == "csv":
        frame = tables.pairs_frame(result) if table == "pairs" else tables.methods_frame(result)
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    shown = [
        (name, build(result))
        for name, build in (("methods", tables.methods_table), ("pairs", tables.pairs_table))
        if table in (None, name)
    ]
    if fmt == "md":
        blocks = [tables.markdown(*t) for _, t in shown]
        typer.echo("\n\n".join([*blocks, tables.summary_line(result)]))
        return
    for name, (header, rows) in shown:
        if not rows:
            console.print(f"{name}: only one method, nothing to pair", style="dim")
            continue
        title = f"{result.metric} on {result.dataset}: " + (
            "methods in rank order" if name == "methods" else "paired differences"
        )
        out = Table(title=escape(title), title_justify="left")
        for h in header:
            left = h in ("method", "A", "B")
            out.add_column(escape(h), justify="left" if left else "right", no_wrap=left)
        for row in rows:
            out.add_row(*(escape(v) for v in row))
        console.print(out)
    console.print(escape(tables.summary_line(result)), style="dim", highlight=False)
