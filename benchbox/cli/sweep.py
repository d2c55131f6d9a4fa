"""``benchbox sweep``: every combination of a grid x seeds, each run in its own process."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console

__all__ = ["AXIS_HELP", "sweep"]

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


#: Options of ``benchbox run`` that take a comma-separated list here: one axis each.
AXIS_HELP = {
    "fusion": "Fusion models, e.g. mean,dual.",
    "seg": "Segmenters, e.g. attunet,smp-unet.",
    "loss": "Segmentation losses, e.g. dice,hybrid.",
    "fusion_loss": "Fusion losses.",
    "dataset": "Datasets, NAME or NAME:PATH, comma-separated.",
    "seed": "Seeds, e.g. 0,1,2.",
}


def sweep(**options: Any) -> None:
    """Run every combination of the axes (comma-separated lists or --grid) in its own
    process; resume by running the same command again.

    Every option of `benchbox run` is accepted and applies to every run, e.g.
    `benchbox sweep --fusion mean,dual --seg attunet --seed 0,1,2 --epochs 4 --jobs 2`.
    """
    from benchbox.cli._settings import given_settings
    from benchbox.config.settings import parse_options, parse_value
    from benchbox.errors import ConfigError
    from benchbox.sweep.driver import check_sweep_name, plan_runs, run_sweep
    from benchbox.sweep.executor import prepared
    from benchbox.sweep.grid import merge_grids, read_grid, split_list

    axes: dict[str, list[Any]] = {}
    for key in AXIS_HELP:
        text = options.pop(key, None)
        if text is not None:
            values = split_list(text)
            axes[key] = [parse_value(v) for v in values] if key == "seed" else values
    if "seed" in axes and not all(isinstance(s, int) and s >= 0 for s in axes["seed"]):
        raise ConfigError(f"--seed takes whole numbers >= 0, e.g. 0,1,2; got {axes['seed']}")
    grid, name, executor = options.pop("grid"), options.pop("name"), options.pop("executor")
    executor_opt, jobs = options.pop("executor_opt"), options.pop("jobs")
    ray_address, retry_failed = options.pop("ray_address"), options.pop("retry_failed")
    rerun = options.pop("rerun")
    dry_run = options.pop("dry_run")
    if name is not None:
        check_sweep_name(name)
    overrides = given_settings(options)
    preset = overrides.pop("preset", None)
    config = overrides.pop("config_file", None)
    out = overrides.setdefault("out", ".")
    the_grid = merge_grids(read_grid(grid) if grid else None, axes)
    if dry_run:
        runs = plan_runs(the_grid, preset, config, overrides)
        from benchbox.hooks.manager import get_registry

        get_registry().get("executor", executor)  # a misspelt executor fails here too
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
    options = parse_options(executor_opt, "--executor-opt")
    if jobs is not None:
        options["jobs"] = jobs
    if ray_address is not None:
        options["address"] = ray_address
    live: Live | None = None
    holder: dict[str, Any] = {}
    title = ""

    def on_start(state: Any) -> None:
        nonlocal live
        live = Live(_status_table(state, title), console=console, refresh_per_second=2)
        live.start()
        holder["state"] = state

    def notify() -> None:
        if live is not None and "state" in holder:
            live.update(_status_table(holder["state"], title))

    # The executor's own set-up (the local forkserver's imports) runs while the runs
    # are planned and checked.
    with prepared(executor, options) as the_executor:
        runs = plan_runs(the_grid, preset, config, overrides)
        title = f"sweep of {len(runs)} runs, executor {executor}"  # read by the closures
        try:
            result = run_sweep(
                runs,
                the_executor,
                out,
                name,
                retry_failed,
                on_start=on_start,
                notify=notify,
                rerun=rerun,
            )
        finally:
            if live is not None:
                notify()
                live.stop()
                console.print()
    in_ledger = result.skipped - result.on_leaderboard
    if in_ledger:
        console.print(
            f"[dim]skipped {in_ledger} run(s) already in the ledger "
            f"({result.skipped_failed} of them failed: --retry-failed runs those again)[/]"
            if result.skipped_failed
            else f"[dim]skipped {in_ledger} run(s) completed earlier in this sweep[/]"
        )
    if result.on_leaderboard:
        boards = ", ".join(sorted({str(run.config.leaderboards) for run in runs}))
        console.print(
            f"[dim]skipped {result.on_leaderboard} run(s) whose config hash is already on "
            f"the leaderboard ({escape(boards)}); --rerun runs them again[/]",
            highlight=False,
        )
    _render_summary(result, {run.config.leaderboards for run in runs})
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


def _render_summary(result: Any, folders: set[Path]) -> None:
    from benchbox.report.tables import method_rows
    from benchbox.sweep.driver import compare_completed

    for path, by, table in compare_completed(result, folders):
        header, rows = method_rows(table, by)
        view = Table(title=escape(f"{path} (this sweep's runs, mean ± std over seeds)"))
        for col in header:
            view.add_column(escape(col), justify="left" if col in by else "right")
        for row in rows:
            view.add_row(*(escape(cell) for cell in row))
        console.print(view)


# Typer reads these annotations at run time, where ``X | None`` is not understood by
# every Typer release this project supports.
_STR: Any = Optional[str]  # noqa: UP045
_STRS: Any = Optional[list[str]]  # noqa: UP045
_INT: Any = Optional[int]  # noqa: UP045


def _parameters() -> list[inspect.Parameter]:
    from benchbox.cli._settings import settings_parameters

    def option(name: str, default: Any, annotation: Any, *flags: str, help: str) -> Any:
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(default, *flags, help=help, rich_help_panel="Sweep"),
            annotation=annotation,
        )

    own = [
        option(
            "grid",
            None,
            _STR,
            "--grid",
            help=escape("TOML grid: [base], [axes], [[exclude]]."),
        ),
        option(
            "name",
            None,
            _STR,
            "--name",
            help="Sweep folder under OUT/sweeps/ (default: from the runs).",
        ),
        option(
            "executor", "local", str, "--executor", "-x", help="local, ray, or a plugin's executor."
        ),
        option(
            "executor_opt",
            None,
            _STRS,
            "--executor-opt",
            help="Executor parameter key=value (repeatable).",
        ),
        option(
            "jobs",
            None,
            _INT,
            "--jobs",
            "-j",
            help="local: runs at once (threads per run = cores / jobs).",
        ),
        option(
            "ray_address",
            None,
            _STR,
            "--ray-address",
            help="ray: 'auto' joins a running cluster (default: start one).",
        ),
        option(
            "retry_failed",
            False,
            bool,
            "--retry-failed",
            help="Run the failed runs of this sweep again.",
        ),
        option(
            "rerun",
            False,
            bool,
            "--rerun",
            help="Run every run again, even one already completed (in this sweep's ledger "
            "or on the leaderboard): adds new rows.",
        ),
        option("dry_run", False, bool, "--dry-run", help="List the runs and exit."),
    ]
    params = []
    for p in settings_parameters():
        if p.name in AXIS_HELP:
            flags = [d for d in p.default.param_decls] if hasattr(p.default, "param_decls") else []
            flags = flags or ["--" + p.name.replace("_", "-")]
            p = inspect.Parameter(
                p.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, *flags, help=AXIS_HELP[p.name], rich_help_panel="Axes"),
                annotation=_STR,
            )
        params.append(p)
    return own + params


sweep.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
