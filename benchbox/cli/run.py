"""``benchbox run``: train a fusion model and/or segmenter, evaluate, append a row.

The command's options are generated from the one declaration of the run settings, the
fields of :class:`benchbox.config.run.RunConfig` (:mod:`benchbox.cli._settings`). Adding
a run setting is one edit, a field in ``RunConfig`` with its help; it then appears in
``benchbox run --help``, in config files and in every record.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err
from benchbox.cli._settings import given_settings, settings_parameters
from benchbox.config.run import Amp
from benchbox.config.settings import HARDWARE
from benchbox.engine.tta import passes


class RichProgress:
    """Renders :class:`benchbox.engine.train.ProgressReporter` events as one rich bar per stage."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._images = 0
        self._seconds = 0.0

    def start(self, stage: str, total_steps: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # A fresh Progress per stage: a restarted one would draw the finished stage's bar
        # again above the new one.
        self._progress = Progress(
            TextColumn("[bold]{task.description:<13}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[ips]:>7.1f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(stage, total=total_steps, loss=float("nan"), ips=0.0)
        self._images, self._seconds = 0, 0.0

    def step(self, loss: float, images: int, seconds: float) -> None:
        # The stage's average speed so far: one step's speed is noisy.
        self._images += images
        self._seconds += seconds
        ips = self._images / self._seconds if self._seconds > 0 else 0.0
        self._progress.update(self._task, advance=1, loss=loss, ips=ips)

    def end(self) -> None:
        self._progress.stop()


def _log(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/]", highlight=False)


def run(**options: Any) -> None:
    """Train fusion and/or segmentation, evaluate on the test split, append a leaderboard row.

    Under ``torchrun`` each process trains its share of one DDP run (rank 0 reports);
    ``--nproc N`` starts N such processes itself (see benchbox.engine.launch).
    """
    from benchbox import config as cfg
    from benchbox.engine.distributed import env_world
    from benchbox.engine.launch import launch
    from benchbox.engine.prepare import prepare
    from benchbox.engine.runner import execute

    nproc = options.pop("nproc", None)
    overrides = given_settings(options)
    preset = overrides.pop("preset", None)
    config_file = overrides.pop("config_file", None)
    run_config = cfg.resolve(preset, config_file, overrides)
    if nproc is not None:
        result = launch(run_config, nproc, entry=_launched)
    elif env_world() is not None:
        result = _launched(run_config)
    else:
        result = execute(prepare(run_config, log=_log), RichProgress(), _log)
    if result is not None:
        _render(result)


def _launched(config: Any, run_id: str | None = None) -> Any:
    """One process of a distributed run: rank 0 shows progress and returns the result."""
    import os

    from benchbox.engine.launch import run_in_group

    main = os.environ.get("RANK", "0") == "0"
    return run_in_group(
        config, RichProgress() if main else None, _log if main else None, run_id=run_id
    )


_NPROC = inspect.Parameter(
    "nproc",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(
        None,
        "--nproc",
        help="Train this one run in N processes with DistributedDataParallel (one per GPU "
        "on CUDA), started by torch's launcher; --batch-size stays the global batch.",
        rich_help_panel=HARDWARE,
        show_default=False,
    ),
    annotation=Optional[int],  # noqa: UP045
)

run.__signature__ = inspect.Signature([*settings_parameters(), _NPROC])  # type: ignore[attr-defined]


def _render(result: Any) -> None:
    from benchbox.metrics.summary import Summary

    summary = Summary(result.summary)
    table = Table(title=f"run {result.run_id}", title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for key, value in summary.means().items():
        std = summary.std(key)
        table.add_row(escape(key), f"{value:.4f}", "" if std is None else f"{std:.4f}")
    if "n_cases" in summary:
        table.add_row("test cases", str(summary.n_cases), "")
    tp = result.record["throughput"]
    if tp.get("train_img_s"):
        table.add_row("training images/s", f"{tp['train_img_s']:.1f}", "")
    table.add_row("inference images/s", f"{tp['infer_img_s']:.1f}", "")
    for key, value in result.record["profile"].items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        table.add_row(escape(key.replace("_", " ")), text, "")
    table.add_row("wall time (s)", f"{result.record['wall_s']:.1f}", "")
    console.print(table)
    sel = result.record["selection"]
    if sel["metric"]:
        console.print(
            f"tested the weights of {escape(sel['stage'])} epoch {sel['epoch']} of "
            f"{sel['epochs_run']}{' (stopped early)' if sel['stopped_early'] else ''}, "
            f"selected by val {escape(sel['metric'])} = {sel['value']:.4f} ({sel['mode']})",
            highlight=False,
        )
    else:
        console.print(f"tested the last epoch: {escape(sel['note'])}", highlight=False)
    scored = []
    applied = result.record["postprocess"]["applied"]
    if applied != "none":
        scored.append(f"post-processed ({escape(applied)})")
    tta = result.record["tta"]
    if tta != "none":
        scored.append(f"predicted with --tta {escape(tta)} ({len(passes(tta))} mirrored passes)")
    if scored:
        console.print("test labels " + " and ".join(scored), highlight=False)
    for region, empty in sorted(summary.empty_counts().items()):
        console.print(
            f"{escape(region)}: {summary.n_cases} cases; empty reference in "
            f"{empty.get('ref', 0)}, empty prediction in {empty.get('pred', 0)}, both in "
            f"{empty.get('both', 0)} (scored by the empty-mask rules of docs/metrics.md)",
            highlight=False,
        )
    files = Table(title="written", title_justify="left", show_header=False)
    files.add_column("what")
    files.add_column("path", overflow="fold")
    for key, path in result.files.items():
        files.add_row(key, escape(str(path)))
    files.add_row("leaderboard", escape(str(result.leaderboard)))
    console.print(files)


__all__ = ["Amp", "console_err", "run"]
