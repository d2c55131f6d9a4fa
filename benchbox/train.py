"""Seeded training: devices, mixed precision, data loaders and the generic stage loop.

The two-stage schedule itself (fusion pre-training, then joint training) is assembled
by :mod:`benchbox.runner` from :func:`train_stage`.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from benchbox.errors import ConfigError, TrainingDivergedError


# -- reproducibility ------------------------------------------------------------------
def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic torch algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy's and Python's seeds from torch's."""
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
) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffling and workers are seeded from ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last and len(data) > batch_size,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


# -- device and precision -------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable device is a ConfigError."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device {name!r} is not a device (use auto, cpu, cuda, cuda:N, mps)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not mps_ok:
        raise ConfigError(f"--device {name}: MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name}: unsupported device type {device.type!r}")
    return device


def device_name(device: torch.device) -> str:
    """A human name of the device (GPU model, or the CPU's)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


@dataclass(frozen=True)
class AmpPlan:
    """What mixed precision a run uses: ``requested`` by the user, ``mode`` in effect."""

    requested: str
    mode: str  # "off", "fp16" or "bf16"
    device_type: str
    reason: str = ""

    @property
    def dtype(self) -> torch.dtype | None:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.mode)

    @property
    def uses_scaler(self) -> bool:
        return self.mode == "fp16"

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_amp(mode: str, device: torch.device) -> AmpPlan:
    """Decide the precision: fp16 + GradScaler on CUDA, bf16 autocast on CPU or CUDA.

    ``auto`` is bf16 on CUDA GPUs that support it, else fp16 on CUDA, and off on CPU and
    MPS: CPU bf16 autocast is slower than float32 on processors without AVX-512/AMX.
    """
    kind = device.type
    if mode == "off":
        return AmpPlan(mode, "off", kind, "disabled")
    if mode == "auto":
        if kind == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            return AmpPlan(mode, "bf16" if bf16 else "fp16", kind, "auto on CUDA")
        return AmpPlan(mode, "off", kind, f"auto on {kind}: float32 is faster here")
    if mode == "fp16":
        if kind != "cuda":
            raise ConfigError(f"--amp fp16 needs CUDA (device is {kind}); use --amp bf16 or off")
        return AmpPlan(mode, "fp16", kind, "fp16 autocast with gradient scaling")
    if mode == "bf16":
        if kind == "mps":
            raise ConfigError("--amp bf16 is not supported on MPS; use --amp off")
        if kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("--amp bf16: this GPU does not support bfloat16")
        return AmpPlan(mode, "bf16", kind, "bf16 autocast")
    raise ConfigError(f"--amp must be one of off, auto, fp16, bf16, not {mode!r}")


def observed_dtype(plan: AmpPlan, module: torch.nn.Module, *inputs: torch.Tensor) -> str:
    """Run one forward pass under the plan and report the output dtype actually produced:
    the record states what ran, not only what was asked for."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), plan.autocast():
            out = module(*inputs)
    finally:
        module.train(was_training)
    return str(out.dtype).replace("torch.", "")


# -- the stage loop -------------------------------------------------------------------
class ProgressReporter(Protocol):
    """What :func:`train_stage` reports to (the CLI renders it with rich)."""

    def start(self, stage: str, total_steps: int) -> None: ...
    def step(self, loss: float, images: int, seconds: float) -> None: ...
    def end(self) -> None: ...


@dataclass
class StageStats:
    """What one training stage did, measured."""

    name: str
    epochs: int
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

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
            "images_per_s": round(self.images_per_s, 2),
            "epoch_losses": self.epoch_losses,
        }


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up, then cosine decay to zero at ``total_steps``."""
    warmup = min(warmup_steps, max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train_stage(
    name: str,
    parameters: Iterable[torch.nn.Parameter],
    compute_loss: Callable[[dict[str, Any]], torch.Tensor],
    loader: Sequence[Any] | torch.utils.data.DataLoader,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    amp: AmpPlan,
    progress: ProgressReporter | None = None,
) -> StageStats:
    """Train ``parameters`` by AdamW with a warm-up + cosine schedule, stepping per batch.

    ``compute_loss(batch)`` runs the forward pass (already under autocast) and returns a
    scalar loss. A NaN or infinite loss raises :class:`TrainingDivergedError`.
    """
    params = [p for p in parameters if p.requires_grad]
    stats = StageStats(name, epochs)
    total = epochs * len(loader)
    if not params or total == 0:
        return stats
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total, warmup_steps)
    )
    scaler = torch.amp.GradScaler("cuda") if amp.uses_scaler else None
    if progress:
        progress.start(name, total)
    try:
        for epoch in range(epochs):
            running, count = 0.0, 0
            # Step time runs from the end of the previous step, so loading counts too.
            t0 = time.perf_counter()
            for batch in loader:
                optimizer.zero_grad(set_to_none=True)
                with amp.autocast():
                    loss = compute_loss(batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"the {name} loss became {value} at epoch {epoch + 1}, step "
                        f"{stats.steps + 1} (lr {scheduler.get_last_lr()[0]:.3g}); the run is "
                        "marked failed: lower the learning rate, or try --amp off"
                    )
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                n = int(batch["a"].shape[0])
                now = time.perf_counter()
                dt, t0 = now - t0, now
                stats.steps += 1
                stats.images += n
                stats.seconds += dt
                running += value * n
                count += n
                if progress:
                    progress.step(value, n, dt)
            stats.epoch_losses.append(running / max(count, 1))
    finally:
        if progress:
            progress.end()
    return stats
