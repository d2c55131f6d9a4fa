"""``benchbox runs [DIR]``: the runs of an output folder and their state, stale ones too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console

if TYPE_CHECKING:
    from benchbox.records.runs import RunState

__all__ = ["runs"]

_STYLE = {
    "completed": "green",
    "running": "cyan",
    "failed": "red",
    "interrupted": "yellow",
    "stale": "magenta",
    "unknown": "dim",
}


def _beat(run: RunState) -> str:
    if run.state != "running" or run.heartbeat_age_s is None:
        return ""
    return f"heartbeat {max(run.heartbeat_age_s, 0):.0f} s ago"


def runs(
    folder: str = typer.Argument(
        ".", help="An output folder (as given to `benchbox run --out`) or its runs/ folder."
    ),
    state: list[str] | None = typer.Option(
        None,
        "--state",
        help="Show only runs in this state (repeatable): running, completed, failed, "
        "interrupted, stale, unknown.",
    ),
    stale_after: float | None = typer.Option(
        None,
        "--stale-after",
        help="Seconds without a heartbeat after which a running run is stale (default 300).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines, one per run."),
) -> None:
    """List the runs and their state; a dead run that still says running is 'stale'."""
    import json

    from benchbox.records.runs import STALE_AFTER_S, STATES, list_runs

    found = list_runs(
        folder, stale_after=STALE_AFTER_S if stale_after is None else stale_after, states=state
    )
    if as_json:
        for run in found:
            typer.echo(json.dumps(run.to_dict()))
        return
    table = Table(title=escape(f"runs in {folder}"), title_justify="left")
    for column in ("run", "state", "started", "elapsed", "host:pid", "note"):
        table.add_column(column, overflow="fold")
    for run in found:
        elapsed = "" if run.elapsed_s is None else f"{run.elapsed_s:.0f} s"
        where = f"{run.host or '?'}:{run.pid}" if run.pid is not None else ""
        style = _STYLE.get(run.state, "")
        table.add_row(
            escape(run.run_id),
            f"[{style}]{run.state}[/]",
            escape(run.started or ""),
            elapsed,
            escape(where),
            escape(run.reason or _beat(run)),
        )
    console.print(table)
    counts = {s: sum(run.state == s for run in found) for s in STATES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no runs"
    console.print(summary, highlight=False)
