"""Seeded training: data loaders and the generic stage loop.

The two-stage schedule itself (fusion pre-training, then joint training) is assembled
by :mod:`benchbox.engine.schedule` from :func:`train_stage`; the device, mixed
precision and seeds are :mod:`benchbox.engine.device`'s.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from benchbox.engine.device import AmpPlan
from benchbox.engine.divergence import explain
from benchbox.errors import DataError, TrainingDivergedError

if TYPE_CHECKING:
    from benchbox.engine.distributed import Distributed

__all__ = [
    "LOSS_READ_EVERY",
    "MAX_NONFINITE_STEPS",
    "TIMING_WARMUP_STEPS",
    "LabelCheckedLoader",
    "Optimizer",
    "ProgressReporter",
    "StageStats",
    "check_labels",
    "cosine_with_warmup",
    "excluded_steps",
    "make_loader",
    "seed_worker",
    "train_stage",
]


# -- data loaders ---------------------------------------------------------------------
def seed_worker(worker_id: int, rank: int = 0) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy's and Python's seeds from torch's.

    On ``rank > 0`` of a distributed run torch's worker seed (the same on every rank) is
    first mixed with the rank, so the ranks' workers draw different numbers.
    """
    if rank:
        from benchbox.engine.distributed import rank_seed

        torch.manual_seed(rank_seed(torch.initial_seed() % 2**32, rank))
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    data: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffling and workers are seeded from ``seed``.

    With ``world_size > 1`` (training in a distributed run) ``batch_size`` is the global
    batch: every rank draws the batches a single process would and loads its share of
    each (:class:`benchbox.engine.distributed.ShardedBatchSampler`).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    drop = drop_last and len(data) > batch_size
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "worker_init_fn": functools.partial(seed_worker, rank=rank) if rank else seed_worker,
        "generator": generator,
        "persistent_workers": num_workers > 0,
    }
    if world_size <= 1:
        return torch.utils.data.DataLoader(
            data, batch_size=batch_size, shuffle=shuffle, drop_last=drop, **common
        )
    from benchbox.engine.distributed import ShardedBatchSampler

    # The same samplers DataLoader(shuffle=...) builds, drawing from the same generator,
    # so the global batches are the single-process ones.
    sampler: Any = (
        torch.utils.data.RandomSampler(data, generator=generator)
        if shuffle
        else torch.utils.data.SequentialSampler(data)
    )
    batches = torch.utils.data.BatchSampler(sampler, batch_size, drop)
    return torch.utils.data.DataLoader(
        data, batch_sampler=ShardedBatchSampler(batches, rank, world_size), **common
    )


# -- the stage loop -------------------------------------------------------------------
class ProgressReporter(Protocol):
    """What :func:`train_stage` reports to (the CLI renders it with rich)."""

    def start(self, stage: str, total_steps: int) -> None: ...
    def step(self, loss: float, images: int, seconds: float) -> None: ...
    def end(self) -> None: ...


#: Steps at the start of each training stage left out of its images/s: the first steps
#: pay for allocation, the convolution backends' per-shape setup and loader start-up.
TIMING_WARMUP_STEPS = 5

#: The loss value is read on the host (a device synchronisation on CUDA) at the first
#: step, every this many steps, and at the end of each epoch; nowhere else.
LOSS_READ_EVERY = 10
#: With fp16 and the gradient scaler, a step whose loss is not finite is skipped (the
#: scaler lowers its scale); only this many such steps in a row stop the run as diverged.
MAX_NONFINITE_STEPS = 5


@dataclass
class StageStats:
    """What one training stage did, measured.

    ``images`` and ``seconds`` cover every step; ``timed_images`` and ``timed_seconds``
    leave out the first ``excluded_steps`` steps (see :data:`TIMING_WARMUP_STEPS`), and
    :attr:`images_per_s` is their ratio. A step's time runs from the end of the previous
    step, so loading the batch counts.
    """

    name: str
    epochs: int
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    excluded_steps: int = 0
    timed_images: int = 0
    timed_seconds: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Training images per second over the timed steps (warm-up steps excluded)."""
        return self.timed_images / self.timed_seconds if self.timed_seconds > 0 else 0.0

    @property
    def final_loss(self) -> float:
        return self.epoch_losses[-1] if self.epoch_losses else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epochs": self.epochs,
            "steps": self.steps,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "excluded_steps": self.excluded_steps,
            "timed_images": self.timed_images,
            "timed_seconds": round(self.timed_seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "epoch_losses": self.epoch_losses,
        }


def excluded_steps(total_steps: int) -> int:
    """How many first steps of a stage of ``total_steps`` are left out of its timing:
    :data:`TIMING_WARMUP_STEPS`, but at most a quarter of the stage."""
    return min(TIMING_WARMUP_STEPS, total_steps // 4)


def check_labels(mask: torch.Tensor, num_classes: int) -> None:
    """Raise :class:`DataError` unless every label of ``mask`` lies in ``[0, K)``.

    ``K`` is ``max(num_classes, 2)``: a one-channel (sigmoid) segmenter has the two
    classes 0 and 1. Called on the host copy of each batch during the first epoch, so
    that the losses never read their target's values (a synchronisation per step on an
    accelerator).
    """
    if not mask.numel():
        return
    lo, hi = (int(v) for v in torch.aminmax(mask))
    k = max(num_classes, 2)
    if lo < 0 or hi >= k:
        raise DataError(
            f"the masks hold labels {lo}..{hi} but the segmenter has {num_classes} output "
            f"channel(s), so labels must lie in [0, {k - 1}]"
        )


class LabelCheckedLoader:
    """Wraps a loader of labelled batches; checks each ``mask`` (see :func:`check_labels`)
    during the first full pass only, i.e. once per dataset."""

    def __init__(self, loader: Any, num_classes: int) -> None:
        self.loader, self.num_classes, self._checked = loader, num_classes, False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if not self._checked:
                check_labels(batch["mask"], self.num_classes)
            yield batch
        self._checked = True


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up, then cosine decay to zero at ``total_steps``."""
    warmup = min(warmup_steps, max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class Optimizer:
    """The optimisation of one training stage: AdamW, stepped per batch, with a linear
    warm-up then cosine learning rate, and gradient scaling under fp16.

    One training step is :meth:`loss` (the forward pass under autocast) then
    :meth:`step` (backward, optimizer and scheduler steps). :func:`train_stage` runs
    these over the batches; ``benchbox bench`` times exactly the same two calls.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float,
        total_steps: int,
        warmup_steps: int,
        amp: AmpPlan,
    ) -> None:
        self.amp = amp
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cosine_with_warmup(total_steps, warmup_steps)
        )
        self.scaler = torch.amp.GradScaler(amp.device_type) if amp.uses_scaler else None

    def loss(
        self, compute_loss: Callable[[dict[str, Any]], torch.Tensor], batch: dict[str, Any]
    ) -> torch.Tensor:
        """Zero the gradients and run ``compute_loss(batch)`` under autocast."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.amp.autocast():
            return compute_loss(batch)

    def step(self, loss: torch.Tensor) -> None:
        """Backward, then the optimizer step (skipped by the scaler when the gradients are
        not finite) and the scheduler step."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])


def train_stage(
    name: str,
    parameters: Iterable[torch.nn.Parameter],
    compute_loss: Callable[[dict[str, Any]], torch.Tensor],
    loader: Sequence[Any] | torch.utils.data.DataLoader | LabelCheckedLoader,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    amp: AmpPlan,
    progress: ProgressReporter | None = None,
    on_epoch_end: Callable[[int, float], bool] | None = None,
    dist: Distributed | None = None,
) -> StageStats:
    """Train ``parameters`` by AdamW with a warm-up + cosine schedule, stepping per batch.

    ``compute_loss(batch)`` runs the forward pass (already under autocast) and returns a
    scalar loss. The loss is accumulated on its device and read on the host only at the
    first step, every :data:`LOSS_READ_EVERY` steps and at the end of each epoch (what
    ``progress`` shows between reads is the last value read); a NaN or infinite value
    there, or in an epoch's mean, raises :class:`TrainingDivergedError`.

    ``on_epoch_end(epoch, mean_loss)`` (``epoch`` counts from 1) runs after each epoch,
    outside the timed steps (validation, trackers); returning ``True`` ends the stage
    early (early stopping). ``stats.epochs`` is then the number of epochs run.

    In a distributed run (``dist`` with a world size above 1) every rank calls this with
    its share of each batch and its DDP-wrapped models in ``compute_loss``: the losses
    read and the epoch means are averaged over the ranks (so every rank sees the same
    values, and a divergence stops all of them at the same step), image counts are
    global, and rank 0's ``on_epoch_end`` decides for every rank.
    """
    params = [p for p in parameters if p.requires_grad]
    stats = StageStats(name, epochs)
    total = epochs * len(loader)
    if not params or total == 0:
        return stats
    opt = Optimizer(
        params, lr=lr, weight_decay=weight_decay, total_steps=total, warmup_steps=warmup_steps,
        amp=amp,
    )  # fmt: skip
    nonfinite = 0  # consecutive steps with a non-finite loss (fp16 with the scaler)
    stats.excluded_steps = excluded_steps(total)
    cuda = next((p.device for p in params if p.device.type == "cuda"), None)
    world = dist.world_size if dist is not None else 1
    mean = dist.mean if dist is not None else (lambda value: value)
    if progress:
        progress.start(name, total)
    try:
        last = float("nan")  # the loss as last read on the host
        last_read = 0  # the step it was read at
        for epoch in range(epochs):
            running = torch.zeros((), dtype=torch.float64, device=params[0].device)
            count = 0
            # Step time runs from the end of the previous step, so loading counts too.
            t0 = time.perf_counter()
            for i, batch in enumerate(loader):
                loss = opt.loss(compute_loss, batch)
                local = int(batch["a"].shape[0])  # this rank's share
                n = local * world  # the step's (global) batch
                if opt.scaler is not None:
                    # The scaler reads its inf/NaN check on the host at every step anyway.
                    last = float(mean(loss.detach()))
                    nonfinite = 0 if math.isfinite(last) else nonfinite + 1
                    if nonfinite >= MAX_NONFINITE_STEPS:
                        raise TrainingDivergedError(
                            f"the {name} loss was not finite for {nonfinite} steps in a row "
                            f"(last {last}, epoch {epoch + 1}, step {stats.steps + 1}); the "
                            "gradient scaler skipped them and the run is marked failed: lower "
                            "the learning rate, or try --amp bf16 or off"
                        )
                    if nonfinite == 0:
                        running += loss.detach().double() * local
                        count += local
                else:
                    running += loss.detach().double() * local
                    count += local
                    read = stats.steps == 0 or (stats.steps + 1) % LOSS_READ_EVERY == 0
                    if read or i == len(loader) - 1:
                        last = float(mean(loss.detach()))
                        if not math.isfinite(last):
                            raise TrainingDivergedError(
                                explain(
                                    name,
                                    last,
                                    epoch=epoch + 1,
                                    step=stats.steps + 1,
                                    lr=opt.lr,
                                    batch=batch,
                                    parameters=params,
                                    rerun=functools.partial(compute_loss, batch),
                                    autocast=amp.autocast,
                                    amp=amp.mode != "off",
                                    last_read=last_read,
                                )
                            )
                        last_read = stats.steps + 1
                opt.step(loss)
                if cuda is not None and stats.steps + 1 in (stats.excluded_steps, total):
                    # The timed window starts and ends with the device idle; in between,
                    # queued GPU work is paid for by a later step, not waited for.
                    torch.cuda.synchronize(cuda)
                now = time.perf_counter()
                dt, t0 = now - t0, now
                stats.steps += 1
                stats.images += n
                stats.seconds += dt
                if stats.steps > stats.excluded_steps:
                    stats.timed_images += n
                    stats.timed_seconds += dt
                if progress:
                    progress.step(last, n, dt)
            if dist is not None and dist.active:
                running = dist.sum(running.reshape(1))[0]
                count = int(dist.sum(torch.tensor([count], device=running.device))[0])
            epoch_loss = float(running) / count if count else math.nan
            if not math.isfinite(epoch_loss):
                raise TrainingDivergedError(
                    f"the {name} loss became {epoch_loss} during epoch {epoch + 1}; the run is "
                    "marked failed: lower the learning rate, or try --amp off"
                )
            stats.epoch_losses.append(epoch_loss)
            stop = on_epoch_end is not None and on_epoch_end(epoch + 1, epoch_loss)
            if dist is not None:
                stop = dist.agree(stop)
            if stop:
                stats.epochs = epoch + 1
                break
    finally:
        if progress:
            progress.end()
    return stats
