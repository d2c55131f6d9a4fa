"""``benchbox predict``: apply a trained run to new images and write its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from benchbox.cli._common import console, console_err

__all__ = ["predict"]


class _Bar:
    """A rich progress bar over cases, on an interactive terminal only."""

    def __init__(self) -> None:
        self.progress: Any = None

    def start(self, total: int) -> None:
        if not console_err.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]predicting[/] {task.fields[case]:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console_err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("predict", total=total, case="")

    def step(self, case: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, case=case)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def predict(
    run_dir: Path = typer.Argument(..., help="A finished run folder, runs/<run_id>."),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="pairs:<dir>, nifti:<dir> or cases:<config.toml>."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (fused/, segmentations/)."),
    split: str = typer.Option("test", "--split", help="test (the test folder / imagesTs) or all."),
    resample: bool = typer.Option(
        False, "--resample", help="Resample a modality whose grid differs instead of failing."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Slices per forward pass (default: the run's)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
) -> None:
    """Predict fused images and segmentations of new images with a trained run."""
    from benchbox.deploy.predict import predict_run

    bar = _Bar()
    try:
        report = predict_run(
            run_dir,
            dataset,
            out,
            split=split.lower(),
            resample=resample,
            batch_size=batch_size,
            device=device,
            start=bar.start,
            step=bar.step,
        )
    finally:
        bar.stop()
    counts = ", ".join(f"{len(v)} {k}" for k, v in report.files.items()) or "no file"
    console.print(
        f"predicted {report.cases} case(s), {report.images} images at "
        f"{report.images_per_s:.1f} img/s (forward passes only); wrote {counts} to "
        f"{escape(str(report.out))}",
        highlight=False,
    )
