"""``benchbox bench``: the speed of one fusion + segmenter pair on synthetic input.

The method follows timm's ``benchmark.py``: the input is created on the device, a number
of warm-up steps run untimed (they pay for allocation, the backends' per-shape setup
and, with ``compile``, compilation), then ``steps`` timed steps. Each step's time is
read after the step has finished on the device (``torch.cuda.synchronize`` on CUDA).

* An **inference step** is the fusion and segmenter forward pass under
  ``torch.inference_mode()`` (and autocast when a lower precision is asked for).
* A **training step** is what one step of ``benchbox run``'s joint stage does: zero the
  gradients, forward, segmentation loss plus ``fusion_weight`` times the fusion loss,
  backward, AdamW step. A fusion-only pair trains on the fusion loss; a fusion model
  without parameters runs under ``no_grad``.

``img_s`` is ``batch * steps / (sum of the timed steps' seconds)``; step times are
given as mean, median and 95th percentile. Peak memory is the growth above what the
process held when the phase began (models and input already allocated): on CUDA
``max_memory_allocated`` after ``reset_peak_memory_stats``, on Linux CPUs the resident
set's high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``), elsewhere
the growth of ``getrusage``'s lifetime ``ru_maxrss``, a lower bound. On out-of-memory
(:func:`benchbox.errors.is_out_of_memory`) a phase is retried with half the batch, down
to 1, and the row says so; out of memory at batch 1, or while the models are profiled
on one image, is one line that names the image size.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbox import errors
from benchbox.engine.timing import Clock, percentile, time_steps
from benchbox.errors import is_out_of_memory

MODES = ("both", "train", "infer")


@dataclass(frozen=True)
class BenchSpec:
    """One combination to measure, and how."""

    fusion: str = "dual"
    seg: str = "attunet"
    image_size: int = 64
    batch_size: int = 16
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    warmup: int = 10
    steps: int = 40
    mode: str = "both"
    num_classes: int = 2
    loss: str = "hybrid"
    fusion_loss: str = "fusion"
    fusion_weight: float = 0.1
    fusion_opts: dict[str, Any] = field(default_factory=dict)
    seg_opts: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a value no benchmark can use."""
        checks = [
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.image_size >= 16, f"--image-size must be at least 16, got {self.image_size}"),
            (self.warmup >= 0, f"--warmup must be 0 or more, got {self.warmup}"),
            (self.steps >= 1, f"--steps must be at least 1, got {self.steps}"),
            (self.mode in MODES, f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}"),
            (self.num_classes >= 1, f"num_classes must be at least 1, got {self.num_classes}"),
            (self.fusion != "none" or self.seg != "none", "--fusion and --seg are both none"),
        ]
        for ok, message in checks:
            if not ok:
                raise errors.ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.fusion} + {self.seg}"


@dataclass
class Phase:
    """The measured steps of one phase (``train`` or ``infer``)."""

    batch_size: int
    step_seconds: list[float]
    warmup_seconds: float
    peak_mem_bytes: int | None
    mem_method: str = "none"

    @property
    def img_s(self) -> float:
        total = sum(self.step_seconds)
        return self.batch_size * len(self.step_seconds) / total if total > 0 else math.inf

    def columns(self, prefix: str) -> dict[str, Any]:
        ms = [1000 * s for s in self.step_seconds]
        mem = self.peak_mem_bytes
        return {
            f"{prefix}_img_s": self.img_s,
            f"{prefix}_batch_size": self.batch_size,
            f"{prefix}_step_ms_mean": statistics.fmean(ms),
            f"{prefix}_step_ms_p50": percentile(ms, 50),
            f"{prefix}_step_ms_p95": percentile(ms, 95),
            f"{prefix}_peak_mem_mb": None if mem is None else mem / 2**20,
            f"{prefix}_warmup_s": self.warmup_seconds,
        }


# -- memory ----------------------------------------------------------------------------
class PeakMemory:
    """Peak memory growth of one phase (see the module docstring for the method)."""

    method = "none"

    def __init__(self, device: Any) -> None:
        self.device = device

    def start(self) -> None:
        import torch

        if self.device.type == "cuda":
            self.method = "cuda max_memory_allocated"
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif _reset_hwm():
            self.method = "VmHWM"
            self._base = _status_kb("VmRSS") * 1024
        else:
            self.method = "ru_maxrss"
            self._base = _maxrss_bytes()

    def peak(self) -> int | None:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device) - self._base)
        if self.device.type != "cpu":
            return None
        now = _status_kb("VmHWM") * 1024 if self.method == "VmHWM" else _maxrss_bytes()
        return max(0, now - self._base)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmHWM") > 0
    except OSError:
        return False


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+)", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _maxrss_bytes() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024  # bytes on macOS, KiB on Linux


# -- models ----------------------------------------------------------------------------
@dataclass
class Models:
    fusion: Any
    segmenter: Any
    seg_loss: Any
    fusion_loss: Any
    device: Any
    amp: Any
    profile: dict[str, Any]

    @property
    def fusion_trainable(self) -> bool:
        return self.fusion is not None and any(p.requires_grad for p in self.fusion.parameters())

    def parameters(self) -> list[Any]:
        params = list(self.segmenter.parameters()) if self.segmenter is not None else []
        if self.fusion_trainable:
            params += list(self.fusion.parameters())
        return [p for p in params if p.requires_grad]


def build_models(spec: BenchSpec, registry: Any = None) -> Models:
    """Resolve, build, profile and place the models; unknown names fail here."""
    import torch

    from benchbox.engine.device import resolve_amp, resolve_device
    from benchbox.hooks.manager import get_registry
    from benchbox.metrics.flops import count_flops, count_parameters

    spec.validate()
    registry = registry or get_registry()
    fusion_entry = registry.get("fusion", spec.fusion) if spec.fusion != "none" else None
    seg_entry = registry.get("segmenter", spec.seg) if spec.seg != "none" else None
    device = resolve_device(spec.device)
    amp = resolve_amp(spec.amp, device)
    fusion = fusion_entry.build(**spec.fusion_opts) if fusion_entry else None
    segmenter = None
    if seg_entry is not None:
        channels = 1 if fusion is not None else 2
        segmenter = seg_entry.build(channels, spec.num_classes, **spec.seg_opts)
    seg_loss = registry.get("loss", spec.loss).build() if segmenter is not None else None
    trainable = fusion is not None and any(p.requires_grad for p in fusion.parameters())
    fusion_loss = registry.get("loss", spec.fusion_loss).build() if trainable else None
    profile: dict[str, Any] = {}
    x = torch.rand(1, 1, spec.image_size, spec.image_size)
    if fusion is not None:
        profile["fusion_params"] = count_parameters(fusion)
        profile["fusion_gflops"] = count_flops(fusion, x, x) / 1e9
    if segmenter is not None:
        seg_x = x if fusion is not None else torch.cat([x, x], dim=1)
        profile["seg_params"] = count_parameters(segmenter)
        profile["seg_gflops"] = count_flops(segmenter, seg_x) / 1e9
    fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
    for module in (fusion, segmenter, seg_loss, fusion_loss):
        if isinstance(module, torch.nn.Module):
            module.to(device).to(memory_format=fmt)
    if spec.compile:
        fusion = torch.compile(fusion) if fusion is not None else None
        segmenter = torch.compile(segmenter) if segmenter is not None else None
    return Models(fusion, segmenter, seg_loss, fusion_loss, device, amp, profile)


def _inputs(spec: BenchSpec, models: Models, batch: int) -> dict[str, Any]:
    import torch

    dev, size = models.device, spec.image_size
    fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.rand(batch, 1, size, size, device=dev, generator=gen).contiguous(memory_format=fmt)
    b = torch.rand(batch, 1, size, size, device=dev, generator=gen).contiguous(memory_format=fmt)
    k = max(spec.num_classes, 2)
    mask = torch.randint(0, k, (batch, size, size), device=dev, generator=gen)
    return {"a": a, "b": b, "mask": mask}


def _forward(models: Models, a: Any, b: Any, grad_fusion: bool) -> tuple[Any, Any]:
    import torch

    fused = None
    if models.fusion is not None:
        if grad_fusion:
            fused = models.fusion(a, b)
        else:
            with torch.no_grad():
                fused = models.fusion(a, b)
    logits = None
    if models.segmenter is not None:
        x = fused if fused is not None else torch.cat([a, b], dim=1)
        logits = models.segmenter(x)
    return fused, logits


def _infer_step(spec: BenchSpec, models: Models, batch: int) -> Callable[[], None]:
    import torch

    data = _inputs(spec, models, batch)
    for module in (models.fusion, models.segmenter):
        if module is not None:
            module.eval()

    def step() -> None:
        with torch.inference_mode(), models.amp.autocast():
            _forward(models, data["a"], data["b"], grad_fusion=False)

    return step


def _train_step(spec: BenchSpec, models: Models, batch: int) -> Callable[[], None]:
    import torch

    data = _inputs(spec, models, batch)
    params = models.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if models.amp.uses_scaler else None
    for module in (models.fusion, models.segmenter):
        if module is not None:
            module.train()
    a, b, mask = data["a"], data["b"], data["mask"]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with models.amp.autocast():
            fused, logits = _forward(models, a, b, grad_fusion=models.fusion_trainable)
            loss = models.seg_loss(logits, mask) if logits is not None else None
            if models.fusion_loss is not None and (loss is None or spec.fusion_weight > 0):
                term = models.fusion_loss(fused, a, b)
                loss = term if loss is None else loss + spec.fusion_weight * term
        assert loss is not None
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    return step


def time_phase(
    make_step: Callable[[int], Callable[[], None]],
    spec: BenchSpec,
    device: Any,
    batch: int,
    clock: Clock = time.perf_counter,
) -> Phase:
    """Warm up, then time ``spec.steps`` steps of ``make_step(batch)``."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step = make_step(batch)
    memory = PeakMemory(device)
    memory.start()
    warmup_seconds, seconds = time_steps(step, spec.warmup, spec.steps, sync, clock)
    return Phase(batch, seconds, warmup_seconds, memory.peak(), memory.method)


def with_retry(measure: Callable[[int], Phase], batch: int, notes: list[str], phase: str) -> Phase:
    """``measure(batch)``, halving the batch on out-of-memory down to 1."""
    import torch

    while True:
        try:
            return measure(batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if batch == 1:
                raise errors.ConfigError(f"{phase}: out of memory even at batch 1") from exc
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        notes.append(f"{phase}: out of memory at batch {batch}, retried at {batch // 2}")
        batch //= 2


def environment_columns(device: Any) -> dict[str, Any]:
    """Where and with what the row was measured."""
    import torch

    from benchbox import __version__
    from benchbox.engine.device import device_name

    return {
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch_version": torch.__version__,
        "benchbox_version": __version__,
        "python_version": platform.python_version(),
    }


def _too_big(spec: BenchSpec, exc: BaseException, doing: str) -> errors.ConfigError:
    """The one line for an allocation that failed where halving the batch cannot help."""
    match = re.search(r"allocate (\d+(?:\.\d+)?) ?(bytes|[KMGT]i?B)", str(exc), re.I)
    asked = ""
    if match:
        number, unit = float(match.group(1)), match.group(2)
        if unit.lower() == "bytes":
            number, unit = number / 2**30, "GiB"
        asked = f" ({number:.1f} {unit} asked for at once)"
    return errors.ConfigError(
        f"out of memory {doing} at {spec.image_size}x{spec.image_size} px{asked}; "
        "try a smaller --image-size"
    )


def bench(
    spec: BenchSpec, registry: Any = None, clock: Clock = time.perf_counter
) -> dict[str, Any]:
    """Measure one combination; returns its throughput row (see
    :data:`benchbox.records.leaderboard.THROUGHPUT_LEADING`).

    Raises:
        ConfigError: a bad setting, or out of memory even at batch 1 (or while the
            models are profiled at the image size).
    """
    try:
        models = build_models(spec, registry)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise _too_big(spec, exc, "while profiling the models") from exc
        raise
    notes: list[str] = []
    row: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fusion": spec.fusion,
        "segmenter": spec.seg,
        "image_size": spec.image_size,
        "requested_batch_size": spec.batch_size,
        "precision": {"off": "float32"}.get(models.amp.mode, models.amp.mode),
        "channels_last": spec.channels_last,
        "compile": spec.compile,
        "warmup_steps": spec.warmup,
        "timed_steps": spec.steps,
    }
    if spec.mode in ("both", "infer"):

        def infer(batch: int) -> Phase:
            return time_phase(
                lambda n: _infer_step(spec, models, n), spec, models.device, batch, clock
            )

        phase = with_retry(infer, spec.batch_size, notes, "infer")
        row.update(phase.columns("infer"))
        row["mem_method"] = phase.mem_method
    if spec.mode in ("both", "train"):
        if models.parameters():

            def train(batch: int) -> Phase:
                return time_phase(
                    lambda n: _train_step(spec, models, n), spec, models.device, batch, clock
                )

            phase = with_retry(train, spec.batch_size, notes, "train")
            row.update(phase.columns("train"))
            row["mem_method"] = phase.mem_method
        else:
            notes.append("train: no trainable parameters")
    row.update(models.profile)
    row.update(environment_columns(models.device))
    row["note"] = "; ".join(notes)
    return row
