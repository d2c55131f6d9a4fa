"""The one model path: check a run's config, build its models, run them on sources.

Every command that uses a fusion model and a segmenter goes through this module:
``benchbox run`` (:mod:`benchbox.engine.prepare`, training in
:mod:`benchbox.engine.schedule`, inference in :mod:`benchbox.engine.inference`), sweep
planning, ``benchbox bench``, ``predict`` and ``export``
(:mod:`benchbox.engine.restore`, :mod:`benchbox.deploy.graphs`) and the model profile.

* :func:`check` is the pre-flight check of a whole config: every component name and
  every ``*_opts`` key and value, the losses' task, the metrics, ``--select``, the
  trackers and the transforms, and whether the run is 2D or 3D (decided once, here:
  :func:`benchbox.engine.dims.run_dims`), without building anything, so a typo stops a
  run or a whole sweep in a second.
* :func:`build` builds the fusion model, the segmenter and their losses (with their
  options and local weights) into one :class:`Models`.
* :func:`segmenter_input` decides what the segmenter sees: the fused image behind a
  fusion model, the sources stacked as channels without one (``--fusion none``).
  :func:`forward` and :class:`Pipeline` are the forward pass of the pipeline built on
  it; :func:`joint_loss` is the loss of one joint training step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.hooks.registry import Entry, Registry

if TYPE_CHECKING:
    from benchbox.engine.distill import Distillation

__all__ = [
    "Models",
    "Pipeline",
    "build",
    "check",
    "dataset_kwargs",
    "distillation_loss",
    "forward",
    "fusion_loss",
    "image_size_in_effect",
    "input_shape",
    "joint_loss",
    "model_io",
    "profile",
    "segmenter_channels",
    "segmenter_input",
]

#: The sources every pipeline takes: ``a`` and ``b``.
SOURCES = 2


# -- the pre-flight check --------------------------------------------------------------
def check(config: RunConfig, registry: Registry, *, data: bool = True) -> dict[str, Entry]:
    """Check a whole run config against the installed plugins; build nothing.

    ``data=False`` leaves the dataset out (``benchbox bench``, which times random inputs
    of the config's sizes: a 3D benchmark needs no 3D dataset).

    Returns the entries of its components by role (``fusion``, ``segmenter``,
    ``dataset``, ``loss``, ``fusion_loss``, and ``distiller:NAME`` for each
    ``--distill``). A ``--teacher`` is read and checked here too
    (:func:`benchbox.engine.distill.check_teacher`): that it finished, that its
    checkpoint loads, that it has what the distillers compare and the same dataset.

    Raises:
        ConfigError: a bad value, option, loss task, ``--select`` or transform option.
        Unknown*Error: a name no plugin registered (with close matches).
        DuplicatePluginError: two plugins registered a name the run uses.
    """
    from benchbox.data.options import check_declared
    from benchbox.engine.augment import check_transforms
    from benchbox.engine.dims import run_dims
    from benchbox.engine.distill import check_teacher
    from benchbox.engine.selection import resolve_objective
    from benchbox.metrics.suite import metrics_for

    config.validate()
    entries: dict[str, Entry] = {}
    if config.has_fusion:
        entries["fusion"] = registry.get("fusion", config.fusion)
        entries["fusion"].check_params(config.params("fusion_opts"))
        entries["fusion_loss"] = _loss_entry(
            registry, config.fusion_loss, "fusion", "--fusion-loss"
        )
        entries["fusion_loss"].check_params(config.params("fusion_loss_opts"))
    if config.has_seg:
        entries["segmenter"] = registry.get("segmenter", config.seg)
        entries["segmenter"].check_params(config.params("seg_opts"))
        entries["loss"] = _loss_entry(registry, config.loss, "segmentation", "--loss")
        entries["loss"].check_params(config.params("loss_opts"))
    if data:
        entries["dataset"] = registry.get("dataset", config.dataset_name)
        kwargs = dataset_kwargs(entries["dataset"], config)
        entries["dataset"].check_params(kwargs)
        check_declared(entries["dataset"].factory, kwargs)
    for task, used in (("fusion", config.has_fusion), ("segmentation", config.has_seg)):
        if used:
            metrics_for(task, registry)  # a duplicated metric name fails now
    # --select's metric is known now; its region suffix only once the dataset is built.
    resolve_objective(config.select, config.has_seg, registry, {})
    for name in config.trackers:
        registry.get("tracker", name)
    check_transforms(registry, config.augment, config.augment_opts)
    run_dims(config, entries, registry)
    for path, flag, used, role in (
        (config.fusion_weights, "--fusion-weights", config.has_fusion, "--fusion"),
        (config.seg_weights, "--seg-weights", config.has_seg, "--seg"),
    ):
        if path and not used:
            raise errors.ConfigError(f"{flag} given but {role} is none")
        if path and not Path(path).is_file():
            raise errors.ConfigError(f"{flag} {path}: no such file")
    entries.update(check_teacher(config, registry))
    return entries


def _loss_entry(registry: Registry, name: str, task: str, flag: str) -> Entry:
    entry = registry.get("loss", name)
    if entry.info.get("task") != task:
        raise errors.ConfigError(
            f"{flag} {name!r} is a {entry.info.get('task')} loss; {flag} needs a {task} loss "
            f"({', '.join(e.name for e in registry.list('loss') if e.info.get('task') == task)})"
        )
    return entry


def image_size_in_effect(entry: Entry, config: RunConfig) -> bool:
    """Whether ``--image-size`` shapes this run's data: always in 2D; in 3D only for a
    dataset that takes it and has no grid of its own to keep (the 3D phantom's in-plane
    size). A volume reader keeps each scan's grid in 3D (``fit = "none"``, below)."""
    return not config.is_3d or (entry.accepts("image_size") and not entry.accepts("fit"))


def dataset_kwargs(entry: Entry, config: RunConfig) -> dict[str, Any]:
    """The dataset factory's arguments; run-wide ones only if the factory takes them."""
    kwargs: dict[str, Any] = {}
    for key, value in (("image_size", config.image_size), ("seed", config.data_seed)):
        if entry.accepts(key):
            kwargs[key] = value
    if config.is_3d and entry.accepts("fit"):
        kwargs["fit"] = "none"  # volumes keep their grid; patches are cut from it
    if config.target_spacing is not None:
        if not entry.accepts("spacing"):
            raise errors.ConfigError(f"dataset {entry.name!r} does not support --spacing")
        kwargs["spacing"] = config.target_spacing
    if config.resample:
        if not entry.accepts("resample"):
            raise errors.ConfigError(f"dataset {entry.name!r} does not support --resample")
        kwargs["resample"] = True
    if not config.has_seg and entry.accepts("lesion_fraction"):
        # Lesion-based slice sampling serves a segmenter; a fusion-only run samples
        # slices whatever their labels (unless --data-opt lesion_fraction says otherwise).
        kwargs["lesion_fraction"] = "none"
    kwargs.update(config.dataset_params())
    if config.dataset_root is not None:
        if not entry.accepts("root"):
            raise errors.ConfigError(
                f"dataset {entry.name!r} takes no path; use --dataset {entry.name}"
            )
        kwargs["root"] = config.dataset_root
    return kwargs


# -- building --------------------------------------------------------------------------
@dataclass
class Models:
    """A run's models and losses, built from their entries.

    Attributes:
        fusion: the fusion model, or ``None`` (``--fusion none``).
        segmenter: the segmenter, or ``None`` (a fusion-only run).
        seg_loss: the segmentation loss (with a segmenter).
        fusion_loss: the fusion loss (with a fusion model that has parameters).
        entries: the registry entries of the components, by role.
        distillation: the teacher and its distillers (``--teacher``), attached by
            :func:`benchbox.engine.prepare.prepare`; ``None`` otherwise. The teacher's
            models are not among :meth:`modules`: they are neither trained nor saved.
    """

    fusion: Any = None
    segmenter: Any = None
    seg_loss: Any = None
    fusion_loss: Any = None
    entries: dict[str, Entry] = field(default_factory=dict)
    distillation: Distillation | None = None

    @property
    def fusion_trainable(self) -> bool:
        return self.fusion is not None and any(p.requires_grad for p in self.fusion.parameters())

    def modules(self) -> dict[str, Any]:
        """``{"fusion": ..., "segmenter": ...}``, the absent ones left out."""
        return {k: m for k, m in (("fusion", self.fusion), ("segmenter", self.segmenter)) if m}

    def components(self) -> list[tuple[Entry, Any]]:
        """``(entry, built object)`` of every component, for
        :func:`benchbox.hooks.registry.blame_plugins`."""
        built = {
            "fusion": self.fusion,
            "segmenter": self.segmenter,
            "loss": self.seg_loss,
            "fusion_loss": self.fusion_loss,
        }
        out = [(self.entries[k], obj) for k, obj in built.items() if k in self.entries]
        return out + (self.distillation.distillers if self.distillation else [])

    def trainable(self, joint: bool = True) -> list[Any]:
        """The parameters a joint step trains: the segmenter's, and the fusion model's
        unless ``joint`` is false (``--freeze-fusion``)."""
        params = list(self.segmenter.parameters()) if self.segmenter is not None else []
        if joint and self.fusion_trainable:
            params += list(self.fusion.parameters())
        if self.distillation is not None:
            params += self.distillation.parameters()
        return [p for p in params if p.requires_grad]

    def to(self, device: Any, channels_last: bool = False) -> Models:
        """Move every module to ``device``, in channels-last memory if asked.

        Convolutions follow their weights' memory format: converting the modules is
        enough (the sources are one-channel, the same bytes in either format).
        """
        for module in (self.fusion, self.segmenter, self.seg_loss, self.fusion_loss):
            if isinstance(module, torch.nn.Module):
                module.to(device)
                memory = torch.preserve_format
                if channels_last:
                    volumetric = any(p.dim() == 5 for p in module.parameters())
                    memory = torch.channels_last_3d if volumetric else torch.channels_last
                module.to(memory_format=memory)
        return self

    def eval(self) -> Models:
        for module in self.modules().values():
            module.eval()
        return self


def build(
    config: RunConfig,
    entries: Mapping[str, Entry],
    num_classes: int,
    *,
    losses: bool = True,
    weights: bool = True,
) -> Models:
    """Build the models of ``config`` from its checked ``entries`` (:func:`check`).

    Args:
        config: the run config: components and their ``*_opts``.
        entries: the components' entries by role.
        num_classes: the segmenter's output classes (the dataset's, background included).
        losses: also build the losses (with their ``--loss-opt`` and
            ``--fusion-loss-opt`` options); a fusion loss only for a fusion model with
            trainable parameters.
        weights: load ``--fusion-weights`` and ``--seg-weights`` when given.
    """
    from benchbox.engine.dims import declared_dims, segmenter_context, slice_wise
    from benchbox.records.weights import load_weights

    roles = ("fusion", "segmenter", "loss", "fusion_loss")
    models = Models(entries={k: v for k, v in entries.items() if k in roles})
    # The order (fusion, its loss, segmenter, its loss) is the order of the random draws
    # of initialisation: changing it changes every seeded run's numbers.
    if config.has_fusion:
        models.fusion = entries["fusion"].build(**config.params("fusion_opts"))
        if config.is_3d and 3 not in declared_dims(entries["fusion"]):
            slice_wise(models.fusion)  # a 2D fusion model feeds a 3D segmenter slice by slice
        if weights and config.fusion_weights:
            load_weights(models.fusion, config.fusion_weights)
        if losses and models.fusion_trainable:
            models.fusion_loss = entries["fusion_loss"].build(**config.params("fusion_loss_opts"))
    if config.has_seg:
        models.segmenter = entries["segmenter"].build(
            in_channels=segmenter_channels(config.has_fusion),
            num_classes=num_classes,
            **segmenter_context(config, entries["segmenter"]),
            **config.params("seg_opts"),
        )
        if weights and config.seg_weights:
            load_weights(models.segmenter, config.seg_weights)
        if losses:
            models.seg_loss = entries["loss"].build(**config.params("loss_opts"))
    if models.fusion_loss is None:
        models.entries.pop("fusion_loss", None)
    if models.seg_loss is None:
        models.entries.pop("loss", None)
    return models


def model_io(dataset: Any, config: RunConfig) -> dict[str, Any]:
    """What a run records about its models' inputs and outputs (``config.json``)."""
    labels = dataset.labels if config.has_seg else None
    return {
        "modalities": list(dataset.modalities),
        "in_channels": segmenter_channels(config.has_fusion),
        "labels": {str(k): v for k, v in labels.items()} if labels else None,
    }


# -- the forward pass ------------------------------------------------------------------
def segmenter_channels(has_fusion: bool) -> int:
    """The segmenter's input channels: the fused image, or every source stacked."""
    return 1 if has_fusion else SOURCES


def segmenter_input(fused: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """What the segmenter sees: the fused image ``(B, 1, ...)`` behind a fusion model,
    else the sources stacked as channels ``(B, 2, ...)`` (early fusion). The one place
    that decides it; training, inference, export, bench and the profile call it."""
    return fused if fused is not None else torch.cat([a, b], dim=1)


def forward(
    fusion: Any, segmenter: Any, a: torch.Tensor, b: torch.Tensor, *, grad_fusion: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The pipeline's forward pass: ``(fused, logits)``, ``None`` for an absent model.

    ``grad_fusion=False`` runs the fusion model without gradients (a frozen or
    parameter-free fusion model in a training step).
    """
    fused = None
    if fusion is not None:
        if grad_fusion:
            fused = fusion(a, b)
        else:
            with torch.no_grad():
                fused = fusion(a, b)
    logits = segmenter(segmenter_input(fused, a, b)) if segmenter is not None else None
    return fused, logits


def joint_loss(
    models: Models,
    batch: Mapping[str, torch.Tensor],
    *,
    fusion_weight: float,
    train_fusion: bool,
    nets: Sequence[Any] | None = None,
) -> torch.Tensor:
    """The loss of one joint (or segmentation-only) training step on a batch on the
    device: the segmentation loss of the segmenter's logits, plus ``fusion_weight``
    times the fusion loss of the fused image when the fusion model trains with it, plus
    the distillation loss when the run has a teacher (:func:`distillation_loss`).

    ``nets`` are the ``(fusion, segmenter)`` modules to call, e.g. their DDP wrappers
    (default: the models themselves).
    """
    fusion_net, seg_net = nets if nets is not None else (models.fusion, models.segmenter)
    a, b = batch["a"], batch["b"]
    fused, logits = forward(fusion_net, seg_net, a, b, grad_fusion=train_fusion)
    assert logits is not None and models.seg_loss is not None
    loss = models.seg_loss(logits, batch["mask"])
    if train_fusion and fusion_weight > 0 and models.fusion_loss is not None:
        assert fused is not None
        loss = loss + fusion_weight * _fusion_loss(models, fused, a, b)
    if models.distillation is not None:
        loss = loss + distillation_loss(models.distillation, fused, logits, a, b)
    return loss


def distillation_loss(
    d: Distillation, fused: torch.Tensor | None, logits: torch.Tensor | None, a: Any, b: Any
) -> torch.Tensor:
    """``--distill-weight`` times the distillers' sum, the student's outputs against the
    teacher's on the same sources. The teacher runs the same pipeline forward, without
    gradients; its time counts in the training step's."""
    from benchbox.engine.distill import outputs

    with torch.no_grad():
        t_fused, t_logits = forward(d.fusion, d.segmenter, a, b)
    result: torch.Tensor = d.loss(outputs(fused, logits), outputs(t_fused, t_logits))
    return result


def fusion_loss(
    models: Models, batch: Mapping[str, torch.Tensor], net: Any = None, *, distill: bool = False
) -> Any:
    """The loss of one fusion (pre-)training step: the fusion loss of the fused image,
    plus the distillation loss with ``distill`` (a fusion-only run's main stage)."""
    a, b = batch["a"], batch["b"]
    fused = (net or models.fusion)(a, b)
    loss = _fusion_loss(models, fused, a, b)
    if distill and models.distillation is not None:
        loss = loss + distillation_loss(models.distillation, fused, None, a, b)
    return loss


def _fusion_loss(models: Models, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> Any:
    """The fusion loss, on 2D slices of volumes (:func:`benchbox.engine.dims.fold_depth`)."""
    from benchbox.engine.dims import fold_depth

    return models.fusion_loss(fold_depth(fused), fold_depth(a), fold_depth(b))


class Pipeline(torch.nn.Module):
    """Fusion and segmentation as one module: ``(a, b) -> (fused, logits)``; a fusion-only
    pipeline returns ``fused``, an early-fusion one ``logits`` (exported as a graph)."""

    def __init__(self, fusion: Any, segmenter: Any) -> None:
        super().__init__()
        self.fusion, self.segmenter = fusion, segmenter

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Any:
        fused, logits = forward(self.fusion, self.segmenter, a, b)
        if logits is None:
            return fused
        return logits if fused is None else (fused, logits)


def input_shape(config: RunConfig) -> tuple[int, ...]:
    """The spatial size of one training input: the patch ``(D, H, W)`` of a 3D run, the
    ``(image_size, image_size)`` slice of a 2D one. Profiles are per this input."""
    patch = config.patch
    return tuple(int(n) for n in patch) if patch else (config.image_size, config.image_size)


def profile(fusion: Any, segmenter: Any, size: int | Sequence[int], device: Any) -> dict[str, Any]:
    """Parameter counts and GFLOPs of a run's models for one sample of spatial size
    ``size`` (an int: a square image; in 3D the patch ``(D, H, W)``, see
    :func:`input_shape`): ``fusion_params``, ``fusion_gflops``, ``seg_params``,
    ``seg_gflops`` (those that exist), the segmenter on what :func:`segmenter_input`
    gives it. Each model is profiled in eval mode and its mode restored
    (:func:`benchbox.metrics.flops.count_flops`)."""
    from benchbox.metrics.flops import count_flops, count_parameters

    spatial = (size, size) if isinstance(size, int) else tuple(size)
    x = torch.rand(1, 1, *spatial, device=device)
    out: dict[str, Any] = {}
    fused = None
    if fusion is not None:
        out["fusion_params"] = count_parameters(fusion)
        out["fusion_gflops"] = count_flops(fusion, x, x) / 1e9
        fused = x
    if segmenter is not None:
        out["seg_params"] = count_parameters(segmenter)
        out["seg_gflops"] = count_flops(segmenter, segmenter_input(fused, x, x)) / 1e9
    return out
