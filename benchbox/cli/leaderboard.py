"""``benchbox leaderboard FILE``: compare the runs of a leaderboard, grouped over seeds."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console

__all__ = ["leaderboard"]


def leaderboard(
    path: str = typer.Argument(..., help="A leaderboard CSV, e.g. leaderboards/synthetic.csv."),
    by: str = typer.Option("fusion,segmenter", "--by", help="Columns that define a group."),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Metric column to show (repeatable); default: the usual ones."
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table instead."),
) -> None:
    """Compare the methods of a leaderboard: mean ± std over each method's seeds (a seed of
    a cross-validated method is its fold runs together)."""
    from pathlib import Path

    from benchbox.analysis.methods import method_table
    from benchbox.cli._common import warn
    from benchbox.errors import DataError
    from benchbox.records import leaderboard as lb
    from benchbox.report.tables import method_rows

    if not Path(path).is_file():
        raise DataError(f"{path}: no such leaderboard file")
    frame = lb.read(path)
    groups = [c.strip() for c in by.split(",") if c.strip()]
    warnings: list[str] = []
    table = method_table(frame, groups, metric or None, warnings)
    for message in warnings:
        warn(message)
    header, rows = method_rows(table, groups)
    if markdown:
        console.print("| " + " | ".join(header) + " |", highlight=False, soft_wrap=True)
        console.print("|" + "---|" * len(header), highlight=False, soft_wrap=True)
        for row in rows:
            console.print("| " + " | ".join(row) + " |", highlight=False, soft_wrap=True)
        return
    out = Table(title=escape(path), title_justify="left")
    for name in header:
        out.add_column(escape(name), justify="left" if name in groups else "right")
    for row in rows:
        out.add_row(*(escape(c) for c in row))
    console.print(out)
