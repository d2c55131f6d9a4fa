"""``benchbox sweep``: every combination of a grid x seeds, each run in its own process."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console

_STYLE = {
    "queued": "dim",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _status_table(state: Any, title: str) -> Table:
    counts = state.ledger.counts()
    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("run")
    table.add_column("status")
    table.add_column("wall", justify="right")
    table.add_column("run id / error", overflow="fold")
    now = time.monotonic()
    for entry in state.ledger:
        wall = entry.wall_s
        if entry.status == "running" and entry.index in state.running:
            wall = now - state.running[entry.index]
        style = _STYLE.get(entry.status, "")
        detail = entry.error if entry.status == "failed" else entry.run_id
        table.add_row(
            str(entry.index),
            escape(entry.label()),
            f"[{style}]{entry.status}[/]",
            _duration(wall),
            escape(detail or ""),
        )
    done = counts["completed"] + counts["failed"]
    table.caption = (
        f"{done}/{len(state.ledger)} done ({counts['failed']} failed), {counts['running']} "
        f"running, elapsed {_duration(state.elapsed())}, ETA {_duration(state.eta())}"
    )
    return table


def sweep(
    ctx: typer.Context,
    grid: str | None = typer.Option(
        None, "--grid", help="A TOML grid file: [base] settings, [axes], [[exclude]] rules."
    ),
    fusion: str | None = typer.Option(None, "--fusion", "-f", help="Fusion models, a,b,c."),
    seg: str | None = typer.Option(None, "--seg", "-s", help="Segmenters, a,b,c."),
    loss: str | None = typer.Option(None, "--loss", help="Segmentation losses, a,b."),
    fusion_loss: str | None = typer.Option(None, "--fusion-loss", help="Fusion losses, a,b."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Datasets, a,b."),
    seed: str | None = typer.Option(None, "--seed", help="Seeds, e.g. 0,1,2."),
    preset: str | None = typer.Option(None, "--preset", help="Preset of every run."),
    config: str | None = typer.Option(None, "--config", "-c", help="A TOML run config."),
    out: str = typer.Option(".", "--out", "-o", help="Folder of runs/, leaderboards/, sweeps/."),
    name: str | None = typer.Option(
        None, "--name", help="Sweep folder name under OUT/sweeps (default: from the grid)."
    ),
    executor: str = typer.Option("local", "--executor", "-x", help="local, ray, or a plugin's."),
    executor_opt: list[str] | None = typer.Option(
        None, "--executor-opt", help="Executor parameter key=value (repeatable)."
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", help="local: runs at once (threads per run = cores / jobs)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="ray: 'auto' joins a running cluster; default starts one."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed runs again."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and exit."),
) -> None:
    """Run every combination of the axes (comma-separated lists or --grid) in its own
    process; resume by running the same command again.

    Every option of `benchbox run` is accepted and applies to every run, e.g.
    `benchbox sweep --fusion mean,dual --seg attunet --seed 0,1,2 --epochs 4 --jobs 2`.
    """
    from benchbox import config as cfg
    from benchbox.errors import ConfigError
    from benchbox.sweep.driver import plan_runs, run_sweep
    from benchbox.sweep.executor import build_executor
    from benchbox.sweep.grid import merge_grids, read_grid, split_list

    axes: dict[str, list[Any]] = {}
    for key, text in {
        "fusion": fusion,
        "seg": seg,
        "loss": loss,
        "fusion_loss": fusion_loss,
        "dataset": dataset,
        "seed": seed,
    }.items():
        if text is not None:
            axes[key] = [cfg.parse_value(v) if key == "seed" else v for v in split_list(text)]
    if "seed" in axes and not all(isinstance(s, int) for s in axes["seed"]):
        raise ConfigError(f"--seed takes whole numbers, got {seed!r}")
    the_grid = merge_grids(read_grid(grid) if grid else None, axes)
    overrides = run_overrides(ctx.args)
    overrides["out"] = out
    runs = plan_runs(the_grid, preset, config, overrides)
    if dry_run:
        table = Table(title=f"{len(runs)} runs", title_justify="left")
        table.add_column("#", justify="right")
        for key in the_grid.axes:
            table.add_column(escape(key))
        table.add_column("config hash")
        for i, run in enumerate(runs):
            table.add_row(
                str(i), *(escape(str(run.axes[k])) for k in the_grid.axes), run.config_hash
            )
        console.print(table)
        return
    options = cfg.parse_options(executor_opt, "--executor-opt")
    if jobs is not None:
        options["jobs"] = jobs
    if ray_address is not None:
        options["address"] = ray_address
    the_executor = build_executor(executor, options)

    live: Live | None = None
    title = f"sweep of {len(runs)} runs, executor {executor}"

    def on_start(state: Any) -> None:
        nonlocal live
        live = Live(_status_table(state, title), console=console, refresh_per_second=2)
        live.start()
        holder["state"] = state

    holder: dict[str, Any] = {}

    def notify() -> None:
        if live is not None and "state" in holder:
            live.update(_status_table(holder["state"], title))

    try:
        result = run_sweep(
            runs, the_executor, out, name, retry_failed, on_start=on_start, notify=notify
        )
    finally:
        if live is not None:
            notify()
            live.stop()
    if result.skipped:
        console.print(f"[dim]{result.skipped} run(s) already done in this sweep were skipped[/]")
    _render_summary(result, out)
    console.print(f"ledger: {escape(str(result.folder / 'ledger.csv'))}", highlight=False)
    counts = result.ledger.counts()
    if result.interrupted:
        console.print("[yellow]sweep interrupted[/]: run the same command again to resume")
        raise typer.Exit(130)
    if counts["failed"]:
        console.print(
            f"[red]{counts['failed']} run(s) failed[/] (see the ledger and logs/); "
            "--retry-failed runs them again"
        )
        raise typer.Exit(1)


def _render_summary(result: Any, out: str) -> None:
    from benchbox.sweep.driver import compare_completed

    for path, by, table in compare_completed(result, out):
        metrics = [c for c in table.columns if c not in by and c != "n"]
        metrics = [m for m in metrics if not m.endswith("_std")]
        view = Table(title=escape(f"{path} (this sweep's runs, mean ± std over seeds)"))
        for col in (*by, "runs", *metrics):
            view.add_column(escape(col), justify="left" if col in by else "right")
        for _, row in table.iterrows():
            cells = [
                f"{row[m]:#.4g} ± {row[m + '_std']:#.2g}" if row["n"] > 1 else f"{row[m]:#.4g}"
                for m in metrics
            ]
            view.add_row(*(escape(str(row[g])) for g in by), str(row["n"]), *cells)
        console.print(view)
