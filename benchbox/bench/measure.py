"""``benchbox bench``: the speed of one fusion + segmenter pair on synthetic input.

The method follows timm's ``benchmark.py``: the input is created on the device, a number
of warm-up steps run untimed (they pay for allocation, the backends' per-shape setup
and, with ``compile``, compilation), then ``steps`` timed steps. Each step's time is
read after the step has finished on the device (``torch.cuda.synchronize`` on CUDA).

What is measured is what ``benchbox run`` runs, through the same code: the models and
losses are checked and built by :mod:`benchbox.engine.models` from a run config (with
every ``--*-opt`` option), and

* an **inference step** is the pipeline's forward pass
  (:func:`benchbox.engine.models.forward`) under ``torch.inference_mode()`` and the
  run's autocast;
* a **training step** is one step of the run's main stage
  (:func:`benchbox.engine.schedule.joint_step`, or ``fusion_step`` for a fusion-only
  pair): the batch moved to the device and augmented by ``--augment``, the run's loss
  with its options plus ``fusion_weight`` times the fusion loss, backward, then the
  run's :class:`benchbox.engine.train.Optimizer` step (AdamW at ``--lr`` with the
  warm-up + cosine schedule over the warm-up and timed steps).

``img_s`` is ``batch * steps / (sum of the timed steps' seconds)``; step times are
given as mean, median and 95th percentile. Peak memory is the growth above what the
process held when the phase began (models and input already allocated), measured by
:class:`benchbox.bench.memory.PeakMemory`. On out-of-memory
(:func:`benchbox.errors.is_out_of_memory`) a phase is retried with half the batch, down
to 1, and the row says so; out of memory at batch 1, or while the models are profiled
on one image, is one line that names the image size.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchbox import errors
from benchbox.bench.memory import PeakMemory
from benchbox.config.layers import apply, resolve
from benchbox.config.run import RunConfig
from benchbox.config.settings import check_settings, setting
from benchbox.engine.timing import Clock, percentile, time_steps
from benchbox.errors import is_out_of_memory

__all__ = [
    "MODES",
    "BenchSettings",
    "BenchSpec",
    "Measured",
    "Phase",
    "bench",
    "build",
    "environment_columns",
    "time_phase",
    "with_retry",
]

MODES = ("both", "train", "infer")


@dataclass
class BenchSettings:
    """What only ``benchbox bench`` has: how to measure. Each setting is declared once
    here (its help, bounds and option); the models, sizes and precision measured are
    run settings (:class:`benchbox.config.run.RunConfig` fields marked ``bench``)."""

    warmup: int = setting(10, "Untimed warm-up steps per phase.", low=0)
    steps: int = setting(40, "Timed steps per phase.", low=1)
    mode: str = setting("both", "What to time: both, train or infer.", choices=MODES)
    compile: bool = setting(False, "torch.compile the models before timing.")
    num_classes: int = setting(2, "Output classes of the segmenter (background included).", low=1)

    def validate(self) -> None:
        check_settings(self)


@dataclass
class BenchSpec:
    """One combination to measure: the run config of the models, and how to measure."""

    config: RunConfig = field(default_factory=RunConfig)
    settings: BenchSettings = field(default_factory=BenchSettings)

    @classmethod
    def make(cls, **values: Any) -> BenchSpec:
        """A spec from flat settings (``fusion="dual", steps=5, ...``): bench settings
        by name, the rest resolved as ``benchbox run`` resolves its options (the
        default preset, ``preset``, ``config_file``)."""
        own = {f.name for f in dataclasses.fields(BenchSettings)}
        settings = BenchSettings(**{k: v for k, v in values.items() if k in own})
        run = {k: v for k, v in values.items() if k not in own}
        preset, config_file = run.pop("preset", None), run.pop("config_file", None)
        spec = cls(resolve(preset, config_file, run), settings)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a value no benchmark can use."""
        self.config.validate()
        self.settings.validate()

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "settings": dataclasses.asdict(self.settings)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSpec:
        config = apply(RunConfig(), data["config"], "bench")
        return cls(config, BenchSettings(**data["settings"]))

    @property
    def label(self) -> str:
        return f"{self.config.fusion} + {self.config.seg}"


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


# -- the models and the two steps ----------------------------------------------------
@dataclass
class Measured:
    """The built models of a spec on its device, and what they run with."""

    models: Any
    nets: tuple[Any, Any]  # the modules called: the models, compiled with --compile
    device: Any
    amp: Any
    augmenter: Any
    profile: dict[str, Any]


def build(spec: BenchSpec, registry: Any = None) -> Measured:
    """Check the spec as ``benchbox run`` checks a config, then build, profile and place
    its models (:mod:`benchbox.engine.models`); a typo anywhere fails here."""
    import torch

    from benchbox.engine.augment import Augmenter, build_transforms
    from benchbox.engine.device import resolve_amp, resolve_device
    from benchbox.engine.models import build as build_models
    from benchbox.engine.models import check, profile
    from benchbox.hooks.manager import get_registry

    spec.validate()
    registry = registry or get_registry()
    config = spec.config
    entries = check(config, registry)
    device = resolve_device(config.device)
    amp = resolve_amp(config.amp, device)
    models = build_models(config, entries, spec.settings.num_classes)
    measured_profile = profile(models.fusion, models.segmenter, config.image_size, "cpu")
    models.to(device, config.channels_last)
    augmenter = Augmenter(
        build_transforms(registry, config.augment, config.augment_opts), config.seed, device
    )
    nets = (models.fusion, models.segmenter)
    if spec.settings.compile:
        nets = tuple(torch.compile(m) if m is not None else None for m in nets)  # type: ignore[assignment]
    return Measured(models, nets, device, amp, augmenter, measured_profile)


def _inputs(spec: BenchSpec, batch: int, device: Any) -> dict[str, Any]:
    """A batch as the run's loader gives it: sources in [0, 1] and class indices."""
    import torch

    size, k = spec.config.image_size, max(spec.settings.num_classes, 2)
    gen = torch.Generator(device=device).manual_seed(0)
    return {
        "a": torch.rand(batch, 1, size, size, device=device, generator=gen),
        "b": torch.rand(batch, 1, size, size, device=device, generator=gen),
        "mask": torch.randint(0, k, (batch, size, size), device=device, generator=gen),
    }


def _infer_step(spec: BenchSpec, m: Measured, batch: int) -> Callable[[], None]:
    import torch

    from benchbox.engine.models import forward

    data = _inputs(spec, batch, m.device)
    m.models.eval()

    def step() -> None:
        with torch.inference_mode(), m.amp.autocast():
            forward(*m.nets, data["a"], data["b"], grad_fusion=False)

    return step


def _trains(m: Measured, spec: BenchSpec) -> list[Any]:
    """The parameters the run's main stage trains (empty: nothing to time)."""
    from benchbox.engine.schedule import joint_fusion

    models = m.models
    if models.segmenter is not None:
        return models.trainable(joint=joint_fusion(models, spec.config))
    return models.trainable(joint=True) if models.fusion_loss is not None else []


def _train_step(spec: BenchSpec, m: Measured, batch: int) -> Callable[[], None]:
    from benchbox.engine.schedule import fusion_step, joint_fusion, joint_step
    from benchbox.engine.train import Optimizer

    config, models = spec.config, m.models
    data = {k: v.cpu() for k, v in _inputs(spec, batch, m.device).items()}
    if models.segmenter is not None:
        train_fusion = joint_fusion(models, config)
        if models.fusion is not None:
            models.fusion.train(train_fusion)
        models.segmenter.train()
        loss_of = joint_step(models, config, m.device, m.augmenter, m.nets)
        lr = config.lr
    else:
        models.fusion.train()
        loss_of = fusion_step(models, m.device, m.augmenter, m.nets[0])
        lr = config.fusion_lr
    opt = Optimizer(
        _trains(m, spec),
        lr=lr,
        weight_decay=config.weight_decay,
        total_steps=spec.settings.warmup + spec.settings.steps,
        warmup_steps=config.warmup_steps,
        amp=m.amp,
    )

    def step() -> None:
        opt.step(opt.loss(loss_of, data))

    return step


def time_phase(
    make_step: Callable[[int], Callable[[], None]],
    spec: BenchSpec,
    device: Any,
    batch: int,
    clock: Clock = time.perf_counter,
) -> Phase:
    """Warm up, then time ``spec.settings.steps`` steps of ``make_step(batch)``."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step = make_step(batch)
    memory = PeakMemory(device)
    memory.start()
    warmup_seconds, seconds = time_steps(
        step, spec.settings.warmup, spec.settings.steps, sync, clock
    )
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
        f"out of memory {doing} at {spec.config.image_size}x{spec.config.image_size} px{asked}; "
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
        m = build(spec, registry)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise _too_big(spec, exc, "while profiling the models") from exc
        raise
    config, settings = spec.config, spec.settings
    notes: list[str] = []
    row: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fusion": config.fusion,
        "segmenter": config.seg,
        "image_size": config.image_size,
        "requested_batch_size": config.batch_size,
        "precision": {"off": "float32"}.get(m.amp.mode, m.amp.mode),
        "channels_last": config.channels_last,
        "compile": settings.compile,
        "warmup_steps": settings.warmup,
        "timed_steps": settings.steps,
    }
    if settings.mode in ("both", "infer"):

        def infer(batch: int) -> Phase:
            return time_phase(lambda n: _infer_step(spec, m, n), spec, m.device, batch, clock)

        phase = with_retry(infer, config.batch_size, notes, "infer")
        row.update(phase.columns("infer"))
        row["mem_method"] = phase.mem_method
    if settings.mode in ("both", "train"):
        if _trains(m, spec):

            def train(batch: int) -> Phase:
                return time_phase(lambda n: _train_step(spec, m, n), spec, m.device, batch, clock)

            phase = with_retry(train, config.batch_size, notes, "train")
            row.update(phase.columns("train"))
            row["mem_method"] = phase.mem_method
        else:
            notes.append("train: no trainable parameters")
    row.update(m.profile)
    row.update(environment_columns(m.device))
    row["note"] = "; ".join(notes)
    return row
