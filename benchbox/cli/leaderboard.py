"""``benchbox leaderboard FILE``: compare the runs of a leaderboard, grouped over seeds."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console


def leaderboard(
    path: str = typer.Argument(..., help="A leaderboard CSV, e.g. leaderboards/synthetic.csv."),
    by: str = typer.Option("fusion,segmenter", "--by", help="Columns that define a group."),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Metric column to show (repeatable); default: the usual ones."
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table instead."),
) -> None:
    """Compare the runs of a leaderboard: mean ± std over the runs of each group (seeds)."""
    from pathlib import Path

    from benchbox.errors import DataError
    from benchbox.records import leaderboard as lb

    if not Path(path).is_file():
        raise DataError(f"{path}: no such leaderboard file")
    frame = lb.read(path)
    groups = [c.strip() for c in by.split(",") if c.strip()]
    table = lb.compare(frame, groups, metric or None)
    metrics = [c for c in table.columns if c not in (*groups, "n") and not c.endswith("_std")]

    def cell(row: Any, m: str) -> str:
        value, std = row[m], row[f"{m}_std"]
        if value != value:  # NaN: the group has no value for this metric
            return "-"
        return f"{_sig(value, 4)} ± {_sig(std, 2)}" if row["n"] > 1 else _sig(value, 4)

    header = [*groups, "runs", *metrics]
    rows = [
        [*(str(r[g]) for g in groups), str(r["n"]), *(cell(r, m) for m in metrics)]
        for _, r in table.iterrows()
    ]
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


def _sig(x: float, digits: int) -> str:
    """``digits`` significant digits; '#' keeps trailing zeros (0.6400 beside 0.9418, a
    0.0 std as 0.0), and a bare trailing point (15. from 15.2) is dropped."""
    return f"{x:#.{digits}g}".rstrip(".") if x == x else "nan"
