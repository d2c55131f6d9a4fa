"""Run configuration: defaults, presets (``configs/<preset>.toml``), config files, overrides.

Precedence, lowest first: the defaults below, the preset file, ``--config FILE``, then
command-line options. The resolved config (every default included) is recorded with
each run, and its hash identifies the experiment on the leaderboard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from benchbox.config.distill import (
    teacher_hash,
    validate_distillation,
)
from benchbox.config.settings import (
    DATA,
    DISTILLATION,
    EVALUATION,
    HARDWARE,
    MODELS,
    OUTPUT,
    check_settings,
    setting,
    setting_of,
)

# Re-exported for code written before the option parsers moved to benchbox.config.settings.
from benchbox.errors import ConfigError

__all__ = [
    "AMP_MODES",
    "NONE",
    "POSTPROCESS_MODES",
    "TTA_MODES",
    "Amp",
    "RunConfig",
]


class Amp(str, Enum):
    """The mixed-precision modes (``--amp``)."""

    off = "off"
    auto = "auto"
    fp16 = "fp16"
    bf16 = "bf16"


AMP_MODES = tuple(mode.value for mode in Amp)
NONE = "none"
#: The values of ``--postprocess`` (applied by :mod:`benchbox.engine.postprocess`).
POSTPROCESS_MODES = ("none", "largest", "auto")
#: The values of ``--tta`` (applied by :mod:`benchbox.engine.tta`).
TTA_MODES = ("none", "flip")


@dataclass
class RunConfig:
    """Everything that defines a ``benchbox run``, each setting declared once.

    A field's default, type and :class:`Setting` (help text, panel, option name) are the
    one declaration of that setting: ``benchbox run``'s options are generated from
    these fields (:mod:`benchbox.cli.run`), config files and presets set them by name,
    and every run records them all. To add a setting, add a field here with
    :func:`setting` and use it where the run needs it.
    """

    # -- models ---------------------------------------------------------------------
    fusion: str = setting(
        "dual",
        "Fusion model, or 'none' to stack the modalities as channels.",
        panel=MODELS,
        short="-f",
        bench=True,
    )
    seg: str = setting(
        "attunet",
        "Segmenter, or 'none' for a fusion-only run.",
        panel=MODELS,
        short="-s",
        bench=True,
    )
    loss: str = setting("hybrid", "Segmentation loss (default hybrid).", panel=MODELS, bench=True)
    fusion_loss: str = setting("fusion", "Fusion loss (default fusion).", panel=MODELS, bench=True)
    fusion_opts: dict[str, Any] = setting(
        dict,
        "Fusion model parameter key=value (repeatable).",
        panel=MODELS,
        flag="--fusion-opt",
        bench=True,
    )
    seg_opts: dict[str, Any] = setting(
        dict,
        "Segmenter parameter key=value (repeatable).",
        panel=MODELS,
        flag="--seg-opt",
        bench=True,
    )
    loss_opts: dict[str, Any] = setting(
        dict,
        "Segmentation loss parameter key=value (repeatable).",
        panel=MODELS,
        flag="--loss-opt",
        bench=True,
    )
    fusion_loss_opts: dict[str, Any] = setting(
        dict,
        "Fusion loss parameter key=value (repeatable).",
        panel=MODELS,
        flag="--fusion-loss-opt",
        bench=True,
    )
    fusion_weights: str | None = setting(
        None,
        "Load fusion weights from a local .safetensors or state_dict file.",
        panel=MODELS,
        bench=True,
    )
    seg_weights: str | None = setting(
        None, "Load segmenter weights from a local file.", panel=MODELS, bench=True
    )
    # -- data -----------------------------------------------------------------------
    dataset: str = setting(
        "synthetic", "NAME or NAME:PATH (default synthetic).", panel=DATA, short="-d"
    )
    data_opts: dict[str, Any] = setting(
        dict, "Dataset parameter key=value (repeatable).", panel=DATA, flag="--data-opt"
    )
    data_seed: int = setting(0, "Seed of the dataset (synthetic data, splits).", panel=DATA)
    image_size: int = setting(
        64,
        "Training image size (a multiple of 32).",
        panel=DATA,
        low=32,
        multiple_of=32,
        bench=True,
    )
    resample: bool = setting(
        False, "Resample a modality whose geometry differs onto the reference one.", panel=DATA
    )
    # -- training -------------------------------------------------------------------
    seed: int = setting(0, "Seed of initialisation and shuffling.")
    epochs: int = setting(8, "Epochs of the main stage (joint, or fusion-only).", low=0)
    fusion_epochs: int = setting(2, "Fusion pre-training epochs before joint training.", low=0)
    batch_size: int = setting(16, "Training batch size.", low=1, bench=True)
    lr: float = setting(2e-3, "Learning rate of the main stage.", low=0, low_open=True, bench=True)
    fusion_lr: float = setting(2e-3, "Learning rate of fusion pre-training.", low=0, low_open=True)
    weight_decay: float = setting(1e-4, "AdamW weight decay.", low=0, bench=True)
    warmup_steps: int = setting(
        10, "Linear warm-up steps before the cosine schedule.", low=0, bench=True
    )
    fusion_weight: float = setting(
        0.1, "Lambda: weight of the fusion loss in joint training.", low=0, bench=True
    )
    freeze_fusion: bool = setting(
        False, "Keep the fusion model fixed during joint training.", bench=True
    )
    deterministic: bool = setting(False, "Use torch's deterministic algorithms.")
    augment: list[str] = setting(
        list,
        "Training augmentation: transforms in order, e.g. flip,affine,gamma (none: off).",
        bench=True,
    )
    augment_opts: dict[str, Any] = setting(
        dict,
        "Transform option NAME.KEY=VALUE, e.g. affine.degrees=15 (repeatable).",
        flag="--augment-opt",
        bench=True,
    )
    # -- distillation (benchbox.config.distill, benchbox.engine.distill) -------------
    teacher: str | None = setting(
        None,
        "A finished run whose frozen models teach: runs/<id>, or hash:<its config hash>.",
        panel=DISTILLATION,
    )
    distill: list[str] = setting(
        list,
        "Distiller added to the loss: logits, cwd, fused, or a plugin's (repeatable).",
        panel=DISTILLATION,
    )
    distill_opts: dict[str, Any] = setting(
        dict,
        "Distiller option NAME.KEY=VALUE, e.g. logits.temperature=2 (repeatable).",
        panel=DISTILLATION,
        flag="--distill-opt",
    )
    distill_weight: float = setting(
        1.0,
        "Weight of the distillation loss(es) added to the run's loss.",
        panel=DISTILLATION,
        low=0,
    )
    # -- validation and evaluation --------------------------------------------------
    val_every: int = setting(
        1, "Validate every N epochs of the main stage (0: off).", panel=EVALUATION, low=0
    )
    max_val_cases: int = setting(
        64, "Validate on at most N val cases, evenly spaced (0: all).", panel=EVALUATION, low=0
    )
    select: str = setting(
        "auto",
        "Val metric that selects the checkpoint: dice (mean over regions), dice_<region>, "
        "hd95, ...; loss for fusion-only runs.",
        panel=EVALUATION,
    )
    patience: int = setting(
        0, "Stop after N validations without improvement (0: never).", panel=EVALUATION, low=0
    )
    postprocess: str = setting(
        "none",
        "Post-process predicted labels: none, largest (keep each class's largest "
        "connected component) or auto (whichever scores better on the val split).",
        panel=EVALUATION,
        choices=POSTPROCESS_MODES,
    )
    tta: str = setting(
        "none",
        "Test-time augmentation of the segmenter: none, or flip (each slice also "
        "mirrored left-right, top-bottom and both; probabilities averaged). Used for the "
        "final validation, the test split and benchbox predict, not for selection.",
        panel=EVALUATION,
        choices=TTA_MODES,
    )
    # mm; equal to metrics.segmentation.DEFAULT_NSD_TOLERANCE
    nsd_tolerance: float = setting(1.0, "NSD tolerance in mm (default 1).", panel=EVALUATION, low=0)
    eval_batch_size: int = setting(
        64, "Slices per forward pass when predicting.", panel=EVALUATION, low=1
    )
    examples: int = setting(4, "Cases shown in examples.png.", panel=EVALUATION, low=0)
    save_predictions: bool = setting(
        False,
        "Write 3D predictions as NIfTI with the source geometry.",
        panel=EVALUATION,
        hashed=False,
    )
    # -- hardware -------------------------------------------------------------------
    amp: str = setting(
        "auto",
        "Mixed precision: off, auto, fp16 (CUDA) or bf16.",
        panel=HARDWARE,
        choices=AMP_MODES,
        bench=True,
    )
    device: str = setting(
        "auto",
        "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.",
        panel=HARDWARE,
        hashed=False,
        bench=True,
    )
    num_workers: int = setting(
        0, "DataLoader worker processes.", panel=HARDWARE, hashed=False, low=0
    )
    channels_last: bool = setting(
        False,
        "Models in channels-last (NHWC) memory: faster convolutions on many CPUs and GPUs "
        "(benchmarks/results/bench_cpu.md); numbers equal to float rounding.",
        panel=HARDWARE,
        hashed=False,
        bench=True,
    )
    # -- files and configs ----------------------------------------------------------
    trackers: list[str] = setting(
        list,
        "Experiment tracker to log to: tensorboard, mlflow, or a plugin's (repeatable).",
        panel=OUTPUT,
        flag="--tracker",
        hashed=False,
    )
    preset: str = setting(
        "quick", "quick (default, 2-core CPU) or standard (GPU).", panel=OUTPUT, bench=True
    )
    config_file: str | None = setting(
        None,
        "A TOML run config; options given here override it.",
        panel=OUTPUT,
        flag="--config",
        short="-c",
        hashed=False,
        bench=True,
    )
    out: str = setting(
        ".",
        "Folder that receives runs/ and leaderboards/ (default: current folder).",
        panel=OUTPUT,
        short="-o",
        hashed=False,
    )
    leaderboard_dir: str | None = setting(
        None,
        "Folder of the leaderboard CSVs (default: OUT/leaderboards).",
        panel=OUTPUT,
        hashed=False,
    )

    @property
    def leaderboards(self) -> Path:
        """The folder this run's leaderboard row goes to."""
        if self.leaderboard_dir:
            return Path(self.leaderboard_dir)
        return Path(self.out) / "leaderboards"

    @property
    def dataset_name(self) -> str:
        return self.dataset.split(":", 1)[0]

    @property
    def dataset_root(self) -> str | None:
        parts = self.dataset.split(":", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None

    def params(self, table: str) -> dict[str, Any]:
        """The parameters of one component from its table (``fusion_opts``, ``seg_opts``,
        ``loss_opts``, ``fusion_loss_opts``, ``data_opts``): the flat entries, plus those
        of a nested table named after the chosen component (``[seg_opts.attunet]``),
        which apply to that component only. Presets size models this way without
        breaking runs of other models."""
        chosen = {
            "fusion_opts": self.fusion,
            "seg_opts": self.seg,
            "loss_opts": self.loss,
            "fusion_loss_opts": self.fusion_loss,
            "data_opts": self.dataset_name,
        }[table]
        params: dict[str, Any] = {}
        for key, value in getattr(self, table).items():
            if isinstance(value, Mapping):
                if key == chosen:
                    params.update(value)
            else:
                params[key] = value
        return params

    def dataset_params(self) -> dict[str, Any]:
        """Parameters for the dataset factory (see :meth:`params`)."""
        return self.params("data_opts")

    @property
    def has_fusion(self) -> bool:
        return self.fusion != NONE

    @property
    def has_seg(self) -> bool:
        return self.seg != NONE

    @property
    def task(self) -> str:
        if self.has_fusion and self.has_seg:
            return "fusion+segmentation"
        return "segmentation" if self.has_seg else "fusion"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self, amp_mode: str | None = None) -> str:
        """A short hash of what the run computes (paths and hardware left out).

        The dataset counts by its reader, the last component of its path and its
        parameters, not by where it lies on disk: ``cases:/data/brats.toml`` and
        ``cases:/mnt/brats.toml`` hash alike, ``pairs:/data/aanlib/PET-MRI`` and
        ``pairs:/data/aanlib/SPECT-MRI`` do not. Given
        ``amp_mode``, the precision actually used (``off``, ``fp16``, ``bf16``) replaces
        the requested one: ``--amp auto`` is float32 on a CPU and bf16 on a GPU.
        """
        data = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        data["dataset"] = self.dataset_name
        if self.dataset_root:
            root = Path(self.dataset_root).expanduser()
            data["dataset"] += ":" + (root.name or root.resolve().name)
        if amp_mode is not None:
            data["amp"] = amp_mode
        if self.teacher:
            # The teacher counts by what it computed, not by where its folder lies.
            data["teacher"] = teacher_hash(self.teacher)
        for name, default in _HASHED_UNLESS_DEFAULT.items():
            if data.get(name) == default:
                del data[name]
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def validate(self) -> None:
        """Check values that need no plugin: one clear error per bad option."""
        if self.fusion == NONE and self.seg == NONE:
            raise ConfigError("--fusion none and --seg none leave nothing to run")
        validate_distillation(self.teacher, self.distill, self.distill_opts, self.distill_weight)
        for name, what in _SEG_ONLY.items():
            if getattr(self, name) != NONE and not self.has_seg:
                raise ConfigError(
                    f"--{name} {getattr(self, name)} {what}; this run has none (--seg none)"
                )
        # Each setting's choices and bounds, as declared with its field.
        check_settings(self)
        if self.has_seg and self.epochs < 1:
            raise ConfigError("epochs must be >= 1 to train a segmenter")


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
#: The settings that are tables of plugin parameters (``--fusion-opt key=value``).
_OPT_TABLES = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name.endswith("_opts"))
#: Settings left out of the config hash (see :attr:`Setting.hashed`).
_NOT_HASHED = frozenset(f.name for f in dataclasses.fields(RunConfig) if not setting_of(f).hashed)
#: Settings that act on a segmenter's output (void with ``--seg none``), and what they do.
_SEG_ONLY = {
    "postprocess": "post-processes a segmenter's labels",
    "tta": "augments a segmenter's predictions",
}
#: Settings added after reference leaderboards were published: at their default they are
#: left out of the hash, so the runs recorded before them keep their hashes.
_HASHED_UNLESS_DEFAULT: dict[str, Any] = {
    "postprocess": "none",
    "tta": "none",
    "teacher": None,
    "distill": [],
    "distill_opts": {},
    "distill_weight": 1.0,
}
