"""The ``tensorboard`` tracker: event files in the run folder.

Install with ``pip install "benchbox[tensorboard]"``.

``tensorboard --logdir runs/`` then shows, per run: ``<stage>/train_loss`` and
``<stage>/val_<metric>`` per epoch, ``selection/epoch``, the example figure, and the
hyper-parameters next to the ``test/<metric>`` results (HPARAMS tab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchbox import ConfigError, RunInfo, flat_params, hookimpl, scalar_metrics


class TensorBoardTracker:
    """Writes one run's scalars, figure and hyper-parameters with ``SummaryWriter``."""

    def __init__(self, subdir: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tracker 'tensorboard' needs the tensorboard package: "
                'pip install "benchbox[tensorboard]"'
            ) from None
        self._writer_class = SummaryWriter
        self.subdir = subdir
        self.writer: Any = None

    @hookimpl
    def run_started(self, run: RunInfo) -> None:
        self.writer = self._writer_class(log_dir=str(run.run_dir / self.subdir))

    @hookimpl
    def epoch_ended(
        self,
        run: RunInfo,
        stage: str,
        epoch: int,
        train_loss: float,
        val_metrics: dict[str, float],
    ) -> None:
        self.writer.add_scalar(f"{stage}/train_loss", train_loss, epoch)
        for key, value in val_metrics.items():
            self.writer.add_scalar(f"{stage}/val_{key}", value, epoch)
        self.writer.flush()

    @hookimpl
    def run_finished(
        self,
        run: RunInfo,
        status: str,
        summary: dict[str, float],
        record: dict[str, Any],
        files: dict[str, Path],
        error: str | None,
    ) -> None:
        if self.writer is None:
            return
        try:
            if "examples" in files:
                import numpy as np
                from PIL import Image

                image = np.asarray(Image.open(files["examples"]).convert("RGB"))
                self.writer.add_image("examples", image, dataformats="HWC")
            selection = record.get("selection") or {}
            if selection.get("epoch") is not None:
                self.writer.add_scalar("selection/epoch", selection["epoch"])
            if status == "completed":
                self.writer.add_hparams(
                    flat_params(run.config),
                    {f"test/{k}": v for k, v in scalar_metrics(summary).items()},
                    run_name="hparams",
                )
        finally:
            self.writer.close()


def tensorboard_tracker(subdir: str = "tensorboard") -> TensorBoardTracker:
    """TensorBoard event files in the run folder: curves, examples, hyper-parameters"""
    return TensorBoardTracker(subdir)
