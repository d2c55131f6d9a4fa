"""Where and how precisely a run computes: the device, mixed precision, seeds and determinism.

:func:`resolve_device` and :func:`resolve_amp` turn ``--device`` and ``--amp`` into what
runs (a clear :class:`~benchbox.errors.ConfigError` when the machine cannot);
:func:`seed_everything` seeds Python, NumPy and torch.
"""

from __future__ import annotations

import os
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchbox.errors import ConfigError

__all__ = [
    "AmpPlan",
    "config_hash",
    "device_name",
    "observed_dtype",
    "resolve_amp",
    "resolve_device",
    "seed_everything",
]


# -- reproducibility ------------------------------------------------------------------
def seed_everything(seed: int, deterministic: bool = False, cuda: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic torch algorithms.

    On CUDA some operations have no deterministic implementation; the backward pass of
    bilinear upsampling (``upsample_bilinear2d_backward``, used by the default models'
    decoders) is one. There torch is asked to warn (``warn_only``) instead of raising, so
    ``--deterministic`` runs: everything with a deterministic kernel uses it, and those
    operations stay non-deterministic (results may differ in the last bits between two
    GPU runs). On the CPU every kernel the default models use is deterministic and a
    missing one raises.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)


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


def config_hash(config: Any) -> str:
    """The hash a run of ``config`` records on this machine: with the precision that
    ``--amp`` resolves to on its device (``auto`` is float32 on a CPU, bf16 on most
    GPUs), as :mod:`benchbox.engine.runner` writes it to the leaderboard.

    A device this machine does not have (``--device cuda`` planned on a CPU-only head
    of a Ray cluster) cannot be resolved here: the requested precision is hashed then.
    """
    try:
        mode = resolve_amp(config.amp, resolve_device(config.device)).mode
    except ConfigError:
        return str(config.hash())
    return str(config.hash(mode))
