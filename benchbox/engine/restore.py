"""A finished run's models, rebuilt from its folder: the recorded config and checkpoint.

``benchbox predict`` and ``benchbox export`` start here. The plugins named in the run's
``config.json`` are looked up in the installed registry and built with the recorded
parameters, then the weights of ``checkpoint.pt`` are loaded with
``torch.load(weights_only=True)``: no code is unpickled.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox import errors
from benchbox.config.layers import apply
from benchbox.config.run import RunConfig
from benchbox.hooks.registry import Registry
from benchbox.records.rundir import checkpoint_error

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "TrainedRun",
    "checkpoint_error",
    "load_run",
    "missing_plugins",
    "open_training_dataset",
    "read_record",
    "run_config",
]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
#: Keys ``config.json`` holds besides the :class:`RunConfig` fields.
_RECORD_KEYS = ("config_hash", "dataset_config", "model_io", "distributed")


@dataclass
class TrainedRun:
    """The rebuilt models of a run and what they expect as input.

    Attributes:
        path: the run folder.
        config: the run's resolved config.
        fusion: the fusion model in eval mode, or ``None`` (``--fusion none``).
        segmenter: the segmenter in eval mode, or ``None`` (fusion-only run).
        modalities: the names of sources ``a`` and ``b`` in training.
        labels: class index -> name (background included), ``None`` if unlabelled.
        dataset_config: the training dataset's recorded parameters (preprocessing).
        postprocess: the post-processing its test split was scored with
            (:mod:`benchbox.engine.postprocess`; ``metrics.json``), applied again by
            ``benchbox predict``.
    """

    path: Path
    config: RunConfig
    fusion: Any
    segmenter: Any
    modalities: tuple[str, str]
    labels: dict[int, str] | None
    dataset_config: dict[str, Any] = field(default_factory=dict)
    postprocess: str = "none"

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else 0

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    def models(self) -> dict[str, Any]:
        """``{"fusion": module, "segmenter": module}`` without the absent ones."""
        return {k: m for k, m in (("fusion", self.fusion), ("segmenter", self.segmenter)) if m}


def read_record(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The run folder and its ``config.json``; one clear error if it is not a run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise errors.ConfigError(f"{path}: no such run folder")
    missing = [name for name in (CONFIG_FILE, CHECKPOINT_FILE) if not (path / name).is_file()]
    if missing:
        state = _status(path)
        if state == "completed":
            raise errors.ConfigError(
                f"{path}: {' and '.join(missing)} missing, though status.json says the run "
                "completed (moved or deleted since?)"
            )
        hint = {
            "failed": " (the run failed)",
            "interrupted": " (the run was interrupted)",
            "running": " (the run is still running, or was killed)",
        }.get(state or "", f" (its status is {state})" if state else "")
        raise errors.ConfigError(f"{path}: not a finished run, no {' or '.join(missing)}{hint}")
    try:
        record = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"{path / CONFIG_FILE}: unreadable ({exc})") from None
    if not isinstance(record, dict):
        raise errors.ConfigError(f"{path / CONFIG_FILE}: expected a JSON object")
    return path, record


def _status(path: Path) -> str | None:
    """The ``status`` of a run folder's ``status.json``, if it says one."""
    try:
        state = json.loads((path / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(state) if state else None


def run_config(record: dict[str, Any], source: str) -> RunConfig:
    """The :class:`RunConfig` of a recorded run, checked as ``benchbox run`` checked it
    (a hand-edited or corrupt value is a :class:`ConfigError` naming ``source``)."""
    values = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    config = apply(RunConfig(), values, source)
    try:
        config.validate()
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"{source}: {exc}") from None
    return config


def missing_plugins(config: RunConfig, registry: Registry, dataset: bool = False) -> list[str]:
    """The run's components that no installed plugin provides, as ``kind 'name'``."""
    wanted = []
    if config.has_fusion:
        wanted.append(("fusion", config.fusion))
    if config.has_seg:
        wanted.append(("segmenter", config.seg))
    if dataset:
        wanted.append(("dataset", config.dataset_name))
    return [f"{kind} {name!r}" for kind, name in wanted if (kind, name) not in registry]


def _io_from_dataset(config: RunConfig, registry: Registry) -> dict[str, Any]:
    """Runs recorded before ``model_io`` existed: read it from the training dataset."""
    from benchbox.engine.models import model_io

    return model_io(open_training_dataset(config, registry), config)


def load_run(
    run_dir: str | Path, registry: Registry | None = None, device: str = "cpu"
) -> TrainedRun:
    """Rebuild a run's models from its folder and load their trained weights.

    Args:
        run_dir: ``runs/<run_id>``, holding ``config.json`` and ``checkpoint.pt``.
        registry: the plugin registry (default: the installed plugins).
        device: where to put the models.

    Raises:
        ConfigError: not a finished run folder, unreadable records, plugins that are not
            installed (all named), or a checkpoint that does not fit the rebuilt models.
    """
    import torch

    from benchbox.engine.models import build, segmenter_channels
    from benchbox.hooks.manager import get_registry
    from benchbox.records.rundir import load_checkpoint

    path, record = read_record(run_dir)
    config = run_config(record, str(path / CONFIG_FILE))
    registry = registry or get_registry()
    missing = missing_plugins(config, registry)
    if missing:
        raise errors.PluginError(
            f"run {path.name} needs plugins that are not installed: {', '.join(missing)} "
            "(install the packages that provide them; `benchbox plugins` lists what is)"
        )
    io = record.get("model_io") or _io_from_dataset(config, registry)
    labels = {int(k): str(v) for k, v in io["labels"].items()} if io.get("labels") else None
    if config.has_seg and not labels:
        raise errors.ConfigError(f"run {path.name}: a segmenter but no labels recorded")
    if config.has_seg and int(io["in_channels"]) != segmenter_channels(config.has_fusion):
        raise errors.ConfigError(
            f"run {path.name}: its segmenter took {io['in_channels']} channel(s), which "
            f"benchbox does not build for --fusion {config.fusion}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's about a foreign pickle protocol
            state = load_checkpoint(path / CHECKPOINT_FILE)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise checkpoint_error(path / CHECKPOINT_FILE, exc) from None
    # The one model path: the components as benchbox run built them, without their
    # losses (nothing is trained) or the weights files they started from.
    entries = {
        role: registry.get(kind, name)
        for role, kind, name, used in (
            ("fusion", "fusion", config.fusion, config.has_fusion),
            ("segmenter", "segmenter", config.seg, config.has_seg),
        )
        if used
    }
    models = build(config, entries, len(labels or {}), losses=False, weights=False)
    for key, module in models.modules().items():
        if not isinstance(module, torch.nn.Module):
            continue
        if key not in state:
            raise errors.ConfigError(f"{path / CHECKPOINT_FILE}: no {key} weights")
        try:
            module.load_state_dict(state[key], strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0]
            raise errors.ConfigError(
                f"{path / CHECKPOINT_FILE}: the {key} weights do not fit "
                f"{getattr(config, 'fusion' if key == 'fusion' else 'seg')!r} as recorded "
                f"({detail})"
            ) from None
        module.to(device).eval()
    fusion, segmenter = models.fusion, models.segmenter
    mods = io.get("modalities") or ["A", "B"]
    return TrainedRun(
        path=path,
        config=config,
        fusion=fusion,
        segmenter=segmenter,
        modalities=(str(mods[0]), str(mods[1])),
        labels=labels,
        dataset_config=dict(record.get("dataset_config") or {}),
        postprocess=_applied_postprocess(path, config),
    )


def _applied_postprocess(path: Path, config: RunConfig) -> str:
    """What the run's test split was post-processed with: ``auto`` is resolved by its
    ``metrics.json``; a run recorded before post-processing existed had none."""
    if config.postprocess != "auto":
        return config.postprocess
    try:
        record = json.loads((path / "metrics.json").read_text())
        applied = str(record["postprocess"]["applied"])
    except (OSError, ValueError, KeyError, TypeError):
        raise errors.ConfigError(
            f"run {path.name}: --postprocess auto, but its metrics.json does not say what "
            "was applied"
        ) from None
    return applied


def open_training_dataset(config: RunConfig, registry: Registry | None = None) -> Any:
    """The run's dataset, opened with the recorded parameters (its test split is the
    one the run was scored on)."""
    from benchbox.engine.models import dataset_kwargs
    from benchbox.hooks.manager import get_registry

    registry = registry or get_registry()
    missing = missing_plugins(config, registry, dataset=True)
    if missing:
        raise errors.PluginError(f"plugins not installed: {', '.join(missing)}")
    entry = registry.get("dataset", config.dataset_name)
    return entry.build(**dataset_kwargs(entry, config))
