"""Knowledge distillation: a finished run (the teacher) teaching the run being trained.

``benchbox run --teacher RUN_DIR --distill NAME`` adds ``--distill-weight`` times the
sum of the distillers' values (``register_distillers`` in :mod:`benchbox.hookspecs`)
to the loss of the run's main stage. This module holds the two checks of a teacher and
the :class:`Distillation` a training step calls:

* :func:`check_teacher`, part of the pre-flight check
  (:func:`benchbox.engine.models.check`), reads the teacher's folder without building
  anything: a finished run (``status.json``), a readable ``config.json`` and
  ``checkpoint.pt`` holding the models the distillers need, the plugins it needs, and
  the same dataset as the student as far as the two configs tell;
* :func:`check_teacher_data`, once the student's dataset is built
  (:mod:`benchbox.engine.prepare`), compares it with what the teacher recorded: the
  dataset's parameters, its modalities and its classes.

The teacher's models are restored by :func:`benchbox.engine.restore.load_run` (what
``benchbox predict`` uses), frozen and kept in eval mode; the pipeline forward of both
runs is :func:`benchbox.engine.models.forward`, called by
:func:`benchbox.engine.models.joint_loss`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox import errors
from benchbox.config.distill import teacher_folder
from benchbox.config.layers import apply
from benchbox.config.run import RunConfig
from benchbox.engine.dims import declared_dims
from benchbox.hooks.registry import Entry, Registry

__all__ = [
    "DISTILLER_PREFIX",
    "Distillation",
    "check_teacher",
    "check_teacher_data",
    "describe",
    "outputs",
    "teacher_config",
]

#: Keys of the distillers' entries among a run's entries (``distiller:logits``).
DISTILLER_PREFIX = "distiller:"
#: ``config.json`` keys that are records, not settings (as in :mod:`benchbox.engine.restore`).
_RECORD_KEYS = ("config_hash", "dataset_config", "model_io", "distributed")


@dataclass
class Distillation:
    """The teacher of a run and the distillers that compare it with the student.

    Attributes:
        fusion: the teacher's fusion model (frozen, eval mode), or ``None``.
        segmenter: the teacher's segmenter (frozen, eval mode), or ``None``.
        distillers: ``(entry, built distiller)`` pairs, in ``--distill`` order.
        weight: ``--distill-weight``.
        teacher: what the records say about the teacher: ``run_id``, ``path``,
            ``config_hash``.
    """

    fusion: Any
    segmenter: Any
    distillers: list[tuple[Entry, Any]]
    weight: float
    teacher: dict[str, str] = field(default_factory=dict)

    def loss(self, student: Mapping[str, Any], teacher: Mapping[str, Any]) -> Any:
        """``weight`` times the sum of the distillers on the two runs' :func:`outputs`."""
        return self.weight * sum(module(student, teacher) for _, module in self.distillers)

    def modules(self) -> list[Any]:
        return [m for m in (self.fusion, self.segmenter) if m is not None]

    def parameters(self) -> list[Any]:
        """The distillers' own trainable parameters (an adapter), trained with the student."""
        return [
            p
            for _, module in self.distillers
            if hasattr(module, "parameters")
            for p in module.parameters()
            if p.requires_grad
        ]


def outputs(fused: Any, logits: Any) -> dict[str, Any]:
    """What a distiller is given of one run: ``{"fused": ..., "logits": ...}``, the
    outputs the run's pipeline does not produce (``None``) left out."""
    return {k: v for k, v in (("fused", fused), ("logits", logits)) if v is not None}


def describe(config: RunConfig) -> str:
    """The distillation of a run in one leaderboard cell: ``logits(temperature=2)+cwd x0.5``
    (``--distill-weight`` shown unless 1); empty without a teacher."""
    if not config.teacher:
        return ""
    parts = []
    for name in config.distill:
        opts = config.distill_opts.get(name) or {}
        shown = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
        parts.append(f"{name}({shown})" if shown else name)
    weight = "" if config.distill_weight == 1 else f" x{config.distill_weight:g}"
    return "+".join(parts) + weight


def teacher_config(config: RunConfig) -> tuple[Path, dict[str, Any], RunConfig]:
    """The teacher's folder, its ``config.json`` and its run config, read and checked.

    Raises:
        ConfigError: one line: no such folder, a run that did not complete (or is still
            running), or an unreadable or hand-broken ``config.json``.
    """
    from benchbox.records.runs import run_state

    assert config.teacher
    flag = f"--teacher {config.teacher}"
    path = teacher_folder(config.teacher, config.out)
    if not path.is_dir():
        raise errors.ConfigError(f"{flag}: no such run folder")
    state = run_state(path)
    if state.state != "completed":
        why = f" ({state.reason})" if state.reason else ""
        raise errors.ConfigError(
            f"{flag}: the run is {state.state}{why}; a teacher must be a completed run"
        )
    try:
        record = json.loads((path / "config.json").read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        values = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
        teacher = apply(RunConfig(), values, f"{flag}: config.json")
        teacher.validate()
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"{flag}: config.json unreadable ({exc})") from None
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"{flag}: config.json: {exc}") from None
    return path, record, teacher


def check_teacher(config: RunConfig, registry: Registry) -> dict[str, Entry]:
    """The pre-flight check of a run's distillation; reads files, builds nothing.

    Returns the distillers' entries, keyed ``distiller:NAME``; ``{}`` without a teacher.

    Raises:
        ConfigError: a teacher that is missing, unfinished or failed; a corrupt
            checkpoint; a teacher or student without the model a distiller compares; a
            dataset that differs; a bad ``--distill-opt``.
        UnknownDistillerError: a distiller no plugin registered.
        PluginError: the teacher needs plugins that are not installed.
    """
    if not config.teacher:
        return {}
    flag = f"--teacher {config.teacher}"
    path, _, teacher = teacher_config(config)
    wanted = [("fusion", teacher.fusion, teacher.has_fusion)]
    wanted.append(("segmenter", teacher.seg, teacher.has_seg))
    missing = [
        f"{kind} {name!r}" for kind, name, used in wanted if used and (kind, name) not in registry
    ]
    if missing:
        raise errors.PluginError(
            f"{flag}: the teacher needs plugins that are not installed: {', '.join(missing)}"
        )
    if teacher.is_3d != config.is_3d:
        raise errors.ConfigError(
            f"{flag} is a {'3D' if teacher.is_3d else '2D'} run and this one is "
            f"{'3D' if config.is_3d else '2D'}: a teacher must see the student's inputs"
            + (" (give --patch-size)" if teacher.is_3d else " (leave out --patch-size)")
        )
    entries: dict[str, Entry] = {}
    for name in config.distill:
        entry = registry.get("distiller", name)
        entry.check_params(config.distill_opts.get(name) or {})
        _check_task(config, teacher, entry, flag)
        if config.is_3d and 3 not in declared_dims(entry):
            raise errors.ConfigError(
                f"distiller {name!r} is 2D only; this is a 3D run (--patch-size)"
            )
        entries[DISTILLER_PREFIX + name] = entry
    _check_checkpoint(path / "checkpoint.pt", teacher, flag)
    _check_same_data(config, teacher, flag)
    return entries


def _check_task(config: RunConfig, teacher: RunConfig, entry: Entry, flag: str) -> None:
    """Both runs must have the model whose output the distiller compares."""
    task = entry.info.get("task")
    model, student_has, teacher_has = (
        ("segmenter", config.has_seg, teacher.has_seg)
        if task == "segmentation"
        else ("fusion model", config.has_fusion, teacher.has_fusion)
    )
    if not teacher_has:
        raise errors.ConfigError(
            f"--distill {entry.name} compares {task} outputs, but {flag} has no {model} "
            f"(--{'seg' if task == 'segmentation' else 'fusion'} none)"
        )
    if not student_has:
        raise errors.ConfigError(
            f"--distill {entry.name} compares {task} outputs, but this run has no {model}"
        )
    if task == "fusion" and config.freeze_fusion:
        raise errors.ConfigError(
            f"--distill {entry.name} trains the fusion model, which --freeze-fusion keeps fixed"
        )


def _dataset_identity(config: RunConfig) -> dict[str, Any]:
    """What two configs must share to build the same dataset: as in the config hash,
    the reader and the last part of its path, not where it lies."""
    root = config.dataset_root
    return {
        "dataset": config.dataset_name + (":" + Path(root).expanduser().name if root else ""),
        "data_seed": config.data_seed,
        "image_size": config.image_size,
        "resample": config.resample,
        "data_opts": _plain(config.dataset_params()),
    }


def _check_same_data(config: RunConfig, teacher: RunConfig, flag: str) -> None:
    mine, theirs = _dataset_identity(config), _dataset_identity(teacher)
    differ = [f"{k} {theirs[k]!r} (this run: {mine[k]!r})" for k in mine if mine[k] != theirs[k]]
    if differ:
        raise errors.ConfigError(
            f"{flag} was trained on other data: its {'; '.join(differ)}; a teacher must "
            "share the student's dataset, splits and image size"
        )


def _check_checkpoint(file: Path, teacher: RunConfig, flag: str) -> None:
    """The checkpoint loads (without unpickling code) and holds the teacher's models."""
    import torch

    try:
        # mmap: the tensors are not read, only the archive and its index.
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated, foreign or refused: torch raises many kinds
        from benchbox.records.rundir import checkpoint_reason

        reason = checkpoint_reason(file, exc)
        raise errors.ConfigError(f"{flag}: checkpoint.pt cannot be read ({reason})") from None
    needed = [
        k for k, used in (("fusion", teacher.has_fusion), ("segmenter", teacher.has_seg)) if used
    ]
    absent = [
        k for k in needed if not isinstance(state, dict) or not isinstance(state.get(k), dict)
    ]
    if absent:
        raise errors.ConfigError(f"{flag}: checkpoint.pt holds no {' or '.join(absent)} weights")


def check_teacher_data(config: RunConfig, dataset: Any) -> None:
    """Compare the student's built dataset with what the teacher recorded: the dataset's
    parameters (its ``config()``), its modalities in order and its classes.

    Raises:
        ConfigError: one line naming what differs.
    """
    if not config.teacher:
        return
    flag = f"--teacher {config.teacher}"
    _, record, teacher = teacher_config(config)
    io = record.get("model_io") or {}
    modalities = [str(m) for m in io.get("modalities") or []]
    if modalities and modalities != [str(m) for m in dataset.modalities]:
        raise errors.ConfigError(
            f"{flag} was trained on modalities {' + '.join(modalities)}, this run's dataset "
            f"gives {' + '.join(dataset.modalities)}"
        )
    labels = io.get("labels") or {}
    if teacher.has_seg and config.has_seg and len(labels) != dataset.num_classes:
        raise errors.ConfigError(
            f"{flag} has {len(labels)} classes ({', '.join(map(str, labels.values()))}), "
            f"this run's dataset {dataset.num_classes}"
        )
    recorded = record.get("dataset_config")
    if isinstance(recorded, dict):
        mine = _plain(dataset.config())
        differ = sorted(k for k in set(mine) | set(recorded) if mine.get(k) != recorded.get(k))
        if differ:
            shown = "; ".join(
                f"{k} {recorded.get(k)!r} (this run: {mine.get(k)!r})" for k in differ[:3]
            )
            raise errors.ConfigError(
                f"{flag} was trained on another version of the dataset: its {shown}"
            )


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), for comparing with a record."""
    return json.loads(json.dumps(value, default=str))
