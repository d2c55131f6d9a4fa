"""``benchbox run``: train a fusion model and/or segmenter, evaluate, append a row."""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err


class Amp(str, Enum):
    off = "off"
    auto = "auto"
    fp16 = "fp16"
    bf16 = "bf16"


class RichProgress:
    """Renders :class:`benchbox.train.ProgressReporter` events as one rich bar per stage."""

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


def run(
    fusion: str | None = typer.Option(
        None, "--fusion", "-f", help="Fusion model, or 'none' to stack the modalities as channels."
    ),
    seg: str | None = typer.Option(
        None, "--seg", "-s", help="Segmenter, or 'none' for a fusion-only run."
    ),
    loss: str | None = typer.Option(None, "--loss", help="Segmentation loss (default hybrid)."),
    fusion_loss: str | None = typer.Option(
        None, "--fusion-loss", help="Fusion loss (default fusion)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="NAME or NAME:PATH (default synthetic)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="quick (default, 2-core CPU) or standard (GPU)."
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="A TOML run config; options given here override it."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of initialisation and shuffling."),
    data_seed: int | None = typer.Option(
        None, "--data-seed", help="Seed of the dataset (synthetic data, splits)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs of the main stage (joint, or fusion-only)."
    ),
    fusion_epochs: int | None = typer.Option(
        None, "--fusion-epochs", help="Fusion pre-training epochs before joint training."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Training image size (a multiple of 32)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate of the main stage."),
    fusion_weight: float | None = typer.Option(
        None, "--fusion-weight", help="Lambda: weight of the fusion loss in joint training."
    ),
    freeze_fusion: bool | None = typer.Option(
        None,
        "--freeze-fusion/--no-freeze-fusion",
        help="Keep the fusion model fixed during joint training.",
    ),
    amp: Amp | None = typer.Option(
        None, "--amp", case_sensitive=False, help="Mixed precision: off, auto, fp16 (CUDA) or bf16."
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."
    ),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--no-deterministic", help="Use torch's deterministic algorithms."
    ),
    num_workers: int | None = typer.Option(
        None, "--num-workers", help="DataLoader worker processes."
    ),
    fusion_opt: list[str] | None = typer.Option(
        None, "--fusion-opt", help="Fusion model parameter key=value (repeatable)."
    ),
    seg_opt: list[str] | None = typer.Option(
        None, "--seg-opt", help="Segmenter parameter key=value (repeatable)."
    ),
    loss_opt: list[str] | None = typer.Option(
        None, "--loss-opt", help="Segmentation loss parameter key=value (repeatable)."
    ),
    fusion_loss_opt: list[str] | None = typer.Option(
        None, "--fusion-loss-opt", help="Fusion loss parameter key=value (repeatable)."
    ),
    data_opt: list[str] | None = typer.Option(
        None, "--data-opt", help="Dataset parameter key=value (repeatable)."
    ),
    nsd_tolerance: float | None = typer.Option(
        None, "--nsd-tolerance", help="NSD tolerance in mm (default 1)."
    ),
    fusion_weights: str | None = typer.Option(
        None,
        "--fusion-weights",
        help="Load fusion weights from a local .safetensors or state_dict file.",
    ),
    seg_weights: str | None = typer.Option(
        None, "--seg-weights", help="Load segmenter weights from a local file."
    ),
    resample: bool | None = typer.Option(
        None,
        "--resample/--no-resample",
        help="Resample a modality whose geometry differs onto the reference one.",
    ),
    save_predictions: bool | None = typer.Option(
        None,
        "--save-predictions/--no-save-predictions",
        help="Write 3D predictions as NIfTI with the source geometry.",
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder that receives runs/ and leaderboards/ (default: current folder).",
    ),
) -> None:
    """Train fusion and/or segmentation, evaluate on the test split, append a leaderboard row."""
    from benchbox import config as cfg
    from benchbox.runner import execute, prepare

    given = {
        "fusion": fusion,
        "seg": seg,
        "loss": loss,
        "fusion_loss": fusion_loss,
        "dataset": dataset,
        "seed": seed,
        "data_seed": data_seed,
        "epochs": epochs,
        "fusion_epochs": fusion_epochs,
        "batch_size": batch_size,
        "image_size": image_size,
        "lr": lr,
        "fusion_weight": fusion_weight,
        "freeze_fusion": freeze_fusion,
        "amp": amp.value if amp else None,
        "device": device,
        "deterministic": deterministic,
        "num_workers": num_workers,
        "fusion_weights": fusion_weights,
        "seg_weights": seg_weights,
        "resample": resample,
        "nsd_tolerance": nsd_tolerance,
        "save_predictions": save_predictions,
        "out": out,
        "fusion_opts": cfg.parse_options(fusion_opt, "--fusion-opt"),
        "seg_opts": cfg.parse_options(seg_opt, "--seg-opt"),
        "loss_opts": cfg.parse_options(loss_opt, "--loss-opt"),
        "fusion_loss_opts": cfg.parse_options(fusion_loss_opt, "--fusion-loss-opt"),
        "data_opts": cfg.parse_options(data_opt, "--data-opt"),
    }
    overrides = {k: v for k, v in given.items() if v is not None and v != {}}
    run_config = cfg.resolve(preset, config, overrides)
    prepared = prepare(run_config, log=_log)
    result = execute(prepared, RichProgress(), _log)
    _render(result)


def _render(result: Any) -> None:
    summary = result.summary
    table = Table(title=f"run {result.run_id}", title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    counts = {k: v for k, v in summary.items() if k.startswith("n_")}
    for key, value in summary.items():
        if key.endswith("_std") or key in counts:
            continue
        std = summary.get(f"{key}_std")
        table.add_row(escape(key), f"{value:.4f}", "" if std is None else f"{std:.4f}")
    if "n_cases" in counts:
        table.add_row("test cases", str(int(counts["n_cases"])), "")
    tp = result.record["throughput"]
    if tp.get("train_img_s"):
        table.add_row("training images/s", f"{tp['train_img_s']:.1f}", "")
    table.add_row("inference images/s", f"{tp['infer_img_s']:.1f}", "")
    for key, value in result.record["profile"].items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        table.add_row(escape(key.replace("_", " ")), text, "")
    table.add_row("wall time (s)", f"{result.record['wall_s']:.1f}", "")
    console.print(table)
    regions = sorted({k.rsplit("_", 1)[-1] for k in counts if k.startswith("n_ref_empty_")})
    for region in regions:
        ref = int(counts.get(f"n_ref_empty_{region}", 0))
        pred = int(counts.get(f"n_pred_empty_{region}", 0))
        both = int(counts.get(f"n_both_empty_{region}", 0))
        console.print(
            f"{escape(region)}: {int(counts.get('n_cases', 0))} cases; empty reference in {ref}, "
            f"empty prediction in {pred}, both in {both} (scored by the empty-mask rules of "
            "docs/metrics.md)",
            highlight=False,
        )
    files = Table(title="written", title_justify="left", show_header=False)
    files.add_column("what")
    files.add_column("path", overflow="fold")
    for key, path in result.files.items():
        files.add_row(key, escape(str(path)))
    files.add_row("leaderboard", escape(str(result.leaderboard)))
    console.print(files)


__all__ = ["console_err", "run"]
