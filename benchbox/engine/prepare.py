"""A run checked and built, nothing trained or written yet: :func:`prepare`.

Everything a user can get wrong (plugin names and parameters, losses, metrics,
trackers, transforms, the dataset, the device, weights, the output folder) is checked
here, cheapest first, so a typo fails in a second rather than after the dataset is
built. The models are then run once on a probe input and their outputs checked against
the hook contracts. :mod:`benchbox.engine.runner` trains and records what this returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.engine.distill import Distillation
from benchbox.engine.models import Models, build, check, dataset_kwargs, segmenter_input
from benchbox.hooks.registry import Entry, Registry

if TYPE_CHECKING:
    from benchbox.engine.distributed import Distributed

__all__ = ["Log", "Prepared", "prepare"]

Log = Callable[[str], None]


@dataclass
class Prepared:
    """A run whose inputs have all been checked; nothing is trained or written yet."""

    config: RunConfig
    registry: Registry
    dataset: Any
    models: Models
    device: Any
    amp: Any
    amp_observed: str
    objective: Any = None  # benchbox.engine.selection.Objective: what selects the checkpoint
    trackers: dict[str, Any] = field(default_factory=dict)  # name -> tracker (a plugin)
    augmenter: Any = None  # benchbox.engine.augment.Augmenter of the training batches
    dist: Distributed | None = None  # this process's rank in a distributed run
    dataset_entry: Entry | None = None

    def components(self) -> list[tuple[Entry, Any]]:
        """``(entry, built object)`` of every plugin component, for
        :func:`benchbox.hooks.registry.blame_plugins`."""
        out = self.models.components()
        if self.dataset_entry is not None:
            out.append((self.dataset_entry, self.dataset))
        return out


def _check_outputs(p: Prepared, probe: Any) -> None:
    """Run the models once on a probe and check their outputs against the hook contracts,
    so a wrong shape is named here, not as a crash inside the next model."""
    import torch

    from benchbox.hooks.registry import blame_plugins

    models = p.models

    def wrong(kind: str, got: Any, expected: str) -> errors.PluginBugError:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        entry = models.entries[kind]
        return errors.PluginBugError(
            f"{kind} {entry.name!r} of plugin {entry.provider} returned {shape} for a "
            f"{tuple(probe.shape)} input; the {kind} contract is {expected} "
            "(benchbox/hookspecs.py)"
        )

    modules = list(models.modules().values())
    modes = [m.training for m in modules]
    try:
        with torch.inference_mode(), blame_plugins(p.components(), "on a probe input"):
            for module in modules:
                module.eval()
            fused = None
            if models.fusion is not None:
                fused = models.fusion(probe, probe)
                if not isinstance(fused, torch.Tensor) or fused.shape != probe.shape:
                    raise wrong("fusion", fused, "one fused image (B, 1, H, W) from two sources")
            if models.segmenter is not None:
                x = segmenter_input(fused, probe, probe)
                logits = models.segmenter(x)
                k = p.dataset.num_classes
                channels = (1, 2) if k == 2 else (k,)  # one sigmoid channel for two classes
                if (
                    not isinstance(logits, torch.Tensor)
                    or logits.ndim != 4
                    or logits.shape[1] not in channels
                    or logits.shape[2:] != x.shape[2:]
                ):
                    raise wrong("segmenter", logits, f"logits (B, {k}, H, W) for {k} classes")
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


def _check_distillation(p: Prepared, probe: Any) -> None:
    """Run the distillers once on the two runs' outputs for a probe, so a teacher whose
    outputs they cannot compare is named before training, not at its first step."""
    import torch

    from benchbox.engine.distill import outputs
    from benchbox.engine.models import forward
    from benchbox.hooks.registry import blame_plugins

    d = p.models.distillation
    assert d is not None
    modules = list(p.models.modules().values())
    modes = [m.training for m in modules]
    try:
        with torch.no_grad(), blame_plugins(p.components(), "on a probe input"):
            for module in modules:
                module.eval()
            fused, logits = forward(p.models.fusion, p.models.segmenter, probe, probe)
            t_fused, t_logits = forward(d.fusion, d.segmenter, probe, probe)
            student, teacher = outputs(fused, logits), outputs(t_fused, t_logits)
            for entry, module in d.distillers:
                value = module(student, teacher)
                if not isinstance(value, torch.Tensor) or value.dim() != 0:
                    raise errors.PluginBugError(
                        f"distiller {entry.name!r} of plugin {entry.provider} returned "
                        f"{getattr(value, 'shape', type(value).__name__)}; the distiller "
                        "contract is a scalar tensor (benchbox/hookspecs.py)"
                    )
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


def _distillation(
    config: RunConfig, entries: dict[str, Entry], models: Models, device: Any, registry: Registry
) -> Distillation:
    """The teacher restored as ``benchbox predict`` restores a run (read-only, on the run's
    device), frozen and in eval mode, with the distillers built.

    The teacher is built outside the run's random stream, so the student's initialisation
    and every later draw are those of the same run without a teacher.
    """
    import torch

    from benchbox.config.distill import teacher_folder
    from benchbox.engine.distill import DISTILLER_PREFIX
    from benchbox.engine.restore import load_run

    built = [
        (
            entries[DISTILLER_PREFIX + name],
            entries[DISTILLER_PREFIX + name].build(**(config.distill_opts.get(name) or {})),
        )
        for name in config.distill
    ]
    for _, module in built:
        if isinstance(module, torch.nn.Module):
            module.to(device)  # a distiller with parameters (an adapter) trains there
    tasks = {entry.info.get("task") for entry, _ in built}
    if "fusion" in tasks and not models.fusion_trainable:
        raise errors.ConfigError(
            f"--distill {','.join(config.distill)}: fusion model {config.fusion!r} has no "
            "trainable parameters to distill into"
        )
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        run = load_run(teacher_folder(config.teacher or "", config.out), registry, device=device)
    for module in run.models().values():
        module.requires_grad_(False)
        module.eval()
        if config.channels_last:
            module.to(memory_format=torch.channels_last)
    # Only what the distillers compare is run: the teacher's segmenter for logits (behind
    # its fusion model, if it has one), its fusion model for the fused image.
    segmenter = run.segmenter if "segmentation" in tasks else None
    fusion = run.fusion if "fusion" in tasks or segmenter is not None else None
    record = json.loads((run.path / "config.json").read_text())
    teacher = {
        "run_id": run.path.name,
        "path": str(run.path.resolve()),
        "config_hash": str(record.get("config_hash", "")),
    }
    return Distillation(fusion, segmenter, built, config.distill_weight, teacher)


def prepare(
    config: RunConfig,
    registry: Registry | None = None,
    log: Log | None = None,
    dist: Distributed | None = None,
) -> Prepared:
    """Check everything, then build the dataset and the models.

    The whole config is checked first (:func:`benchbox.engine.models.check`), cheapest
    first, so a typo fails in a second rather than after the dataset is built; then the
    device, trackers, transforms and the output folder; then the dataset and the models
    (:func:`benchbox.engine.models.build`), which are run once on a probe input and
    their outputs checked against the hook contracts.

    ``dist`` is this process's place in a distributed run (:mod:`benchbox.engine.launch`): its
    device replaces ``config.device``; only rank 0 builds trackers and checks the output
    folder (it alone writes); the global batch must split evenly over the ranks; rank 0
    keeps the run's random stream while the others are reseeded after the models are
    built (:func:`benchbox.engine.distributed.rank_seed`; their weights come from rank 0).
    """
    import torch

    from benchbox.engine.augment import Augmenter, build_transforms
    from benchbox.engine.device import observed_dtype, resolve_amp, resolve_device, seed_everything
    from benchbox.engine.distill import check_teacher_data
    from benchbox.engine.distributed import check_batches, rank_seed
    from benchbox.engine.selection import resolve_objective
    from benchbox.hooks.manager import get_registry
    from benchbox.hooks.registry import blame_plugins
    from benchbox.records.rundir import check_writable

    log = log or (lambda _msg: None)
    registry = registry or get_registry()
    entries = check(config, registry)
    device = dist.device if dist is not None else resolve_device(config.device)
    amp = resolve_amp(config.amp, device)
    main = dist is None or dist.is_main
    rank = dist.rank if dist is not None else 0
    # Trackers are built before training (a missing library fails here, not at the end)
    # and, with the transforms, before the output folder is made.
    trackers = {name: registry.get("tracker", name).build() for name in config.trackers if main}
    augmenter = Augmenter(
        build_transforms(registry, config.augment, config.augment_opts),
        rank_seed(config.seed, rank),
        device,
    )
    if main:
        check_writable(config.out, config.leaderboards)

    seed_everything(config.seed, config.deterministic, cuda=device.type == "cuda")
    dataset = entries["dataset"].build(**dataset_kwargs(entries["dataset"], config))
    if config.has_seg and not dataset.has_labels:
        raise errors.ConfigError(
            f"dataset {config.dataset!r} has no labels, so it cannot train segmenter "
            f"{config.seg!r}; run it fusion-only with --seg none"
        )
    has_foreground = getattr(dataset, "has_foreground", None)
    if config.has_seg and has_foreground is not None and has_foreground("train") is False:
        # A segmenter trained on background only, scored by the empty-mask rule, would
        # put a meaningless row on the leaderboard: refuse rather than warn.
        raise errors.DataError(
            f"dataset {config.dataset!r}: no training case holds a labelled voxel (every "
            f"mask is background), so segmenter {config.seg!r} has nothing to learn; check "
            "the label files, or run fusion-only with --seg none"
        )
    check_teacher_data(config, dataset)
    sizes = {}
    for split in ("train", "test"):
        sizes[split] = len(dataset.split(split))
        if sizes[split] == 0:
            raise errors.DataError(f"dataset {config.dataset!r}: the {split} split is empty")
    if dist is not None:
        check_batches(config.batch_size, sizes["train"], dist.world_size)
    log(
        f"dataset {dataset.name}: {sizes['train']} training and {sizes['test']} test samples, "
        f"modalities {' + '.join(dataset.modalities)}"
    )

    models = build(config, entries, dataset.num_classes).to(device, config.channels_last)
    if config.teacher:
        from benchbox.engine.distill import describe

        models.distillation = _distillation(config, entries, models, device, registry)
        log(f"teacher {models.distillation.teacher['run_id']} (frozen): {describe(config)}")
    objective = resolve_objective(
        config.select, config.has_seg, registry, dataset.eval_regions() if config.has_seg else {}
    )
    prepared = Prepared(
        config,
        registry,
        dataset,
        models,
        device,
        amp,
        "",
        objective,
        trackers,
        augmenter,
        dist,
        entries["dataset"],
    )
    probe_size = min(config.image_size, 64)
    probe = torch.zeros(1, 1, probe_size, probe_size, device=device)
    _check_outputs(prepared, probe)
    if models.distillation is not None:
        _check_distillation(prepared, probe)
    with blame_plugins(prepared.components(), "on a probe input"):
        if models.segmenter is not None:
            fused = probe if models.fusion is not None else None
            prepared.amp_observed = observed_dtype(
                amp, models.segmenter, segmenter_input(fused, probe, probe).contiguous()
            )
        else:
            prepared.amp_observed = observed_dtype(amp, models.fusion, probe, probe)
    if rank:
        seed_everything(rank_seed(config.seed, rank), config.deterministic, device.type == "cuda")
    return prepared
