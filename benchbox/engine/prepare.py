"""A run checked and built, nothing trained or written yet: :func:`prepare`.

Everything a user can get wrong (plugin names and parameters, losses, metrics,
trackers, transforms, the dataset, the device, weights, the output folder) is checked
here, cheapest first, so a typo fails in a second rather than after the dataset is
built. The models are then run once on a probe input and their outputs checked against
the hook contracts. :mod:`benchbox.engine.runner` trains and records what this returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.hooks.registry import Entry, Registry

if TYPE_CHECKING:
    from benchbox.engine.distributed import Distributed

Log = Callable[[str], None]


@dataclass
class Prepared:
    """A run whose inputs have all been checked; nothing is trained or written yet."""

    config: RunConfig
    registry: Registry
    dataset: Any
    fusion: Any
    segmenter: Any
    seg_loss: Any
    fusion_loss: Any
    device: Any
    amp: Any
    amp_observed: str
    entries: dict[str, Entry]
    objective: Any = None  # benchbox.engine.selection.Objective: what selects the checkpoint
    trackers: dict[str, Any] = field(default_factory=dict)  # name -> tracker (a plugin)
    augmenter: Any = None  # benchbox.engine.augment.Augmenter of the training batches
    dist: Distributed | None = None  # this process's rank in a distributed run

    @property
    def fusion_trainable(self) -> bool:
        return self.fusion is not None and any(p.requires_grad for p in self.fusion.parameters())

    def components(self) -> list[tuple[Entry, Any]]:
        """``(entry, built object)`` of every plugin component, for
        :func:`benchbox.hooks.registry.blame_plugins`."""
        built = {
            "fusion": self.fusion,
            "segmenter": self.segmenter,
            "loss": self.seg_loss,
            "fusion_loss": self.fusion_loss,
            "dataset": self.dataset,
        }
        return [(self.entries[k], obj) for k, obj in built.items() if k in self.entries]


def _loss_entry(registry: Registry, name: str, task: str, flag: str) -> Entry:
    entry = registry.get("loss", name)
    if entry.info.get("task") != task:
        raise errors.ConfigError(
            f"{flag} {name!r} is a {entry.info.get('task')} loss; {flag} needs a {task} loss "
            f"({', '.join(e.name for e in registry.list('loss') if e.info.get('task') == task)})"
        )
    return entry


def _check_outputs(p: Prepared, probe: Any) -> None:
    """Run the models once on a probe and check their outputs against the hook contracts,
    so a wrong shape is named here, not as a crash inside the next model."""
    import torch

    from benchbox.hooks.registry import blame_plugins

    def wrong(kind: str, got: Any, expected: str) -> errors.PluginBugError:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        entry = p.entries[kind]
        return errors.PluginBugError(
            f"{kind} {entry.name!r} of plugin {entry.provider} returned {shape} for a "
            f"{tuple(probe.shape)} input; the {kind} contract is {expected} "
            "(benchbox/hookspecs.py)"
        )

    modules = [m for m in (p.fusion, p.segmenter) if m is not None]
    modes = [m.training for m in modules]
    try:
        with torch.inference_mode(), blame_plugins(p.components(), "on a probe input"):
            for module in modules:
                module.eval()
            x = torch.cat([probe, probe], dim=1)
            if p.fusion is not None:
                x = p.fusion(probe, probe)
                if not isinstance(x, torch.Tensor) or x.shape != probe.shape:
                    raise wrong("fusion", x, "one fused image (B, 1, H, W) from two sources")
            if p.segmenter is not None:
                logits = p.segmenter(x)
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


def dataset_kwargs(entry: Entry, config: RunConfig) -> dict[str, Any]:
    """The dataset factory's arguments; run-wide ones only if the factory takes them."""
    kwargs: dict[str, Any] = {}
    for key, value in (("image_size", config.image_size), ("seed", config.data_seed)):
        if entry.accepts(key):
            kwargs[key] = value
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


def prepare(
    config: RunConfig,
    registry: Registry | None = None,
    log: Log | None = None,
    dist: Distributed | None = None,
) -> Prepared:
    """Resolve plugins, build the dataset and models, and check the output folder.

    ``dist`` is this process's place in a distributed run (:mod:`benchbox.engine.launch`): its
    device replaces ``config.device``; only rank 0 builds trackers and checks the output
    folder (it alone writes); the global batch must split evenly over the ranks; rank 0
    keeps the run's random stream while the others are reseeded after the models are
    built (:func:`benchbox.engine.distributed.rank_seed`; their weights come from rank 0).
    """
    import torch

    from benchbox.engine.distributed import check_batches, rank_seed
    from benchbox.engine.train import observed_dtype, resolve_amp, resolve_device, seed_everything
    from benchbox.hooks.manager import get_registry
    from benchbox.hooks.registry import blame_plugins
    from benchbox.records.rundir import check_writable

    log = log or (lambda _msg: None)
    registry = registry or get_registry()
    config.validate()
    entries: dict[str, Entry] = {}
    if config.has_fusion:
        entries["fusion"] = registry.get("fusion", config.fusion)
    if config.has_seg:
        entries["segmenter"] = registry.get("segmenter", config.seg)
    entries["dataset"] = registry.get("dataset", config.dataset_name)
    # Every name and parameter is checked before the dataset is built: a typo must not
    # wait for a (possibly long) dataset preparation.
    if config.has_seg:
        entries["loss"] = _loss_entry(registry, config.loss, "segmentation", "--loss")
        entries["loss"].check_params(config.params("loss_opts"))
        entries["segmenter"].check_params(config.params("seg_opts"))
    if config.has_fusion:
        fusion_loss_entry = _loss_entry(registry, config.fusion_loss, "fusion", "--fusion-loss")
        fusion_loss_entry.check_params(config.params("fusion_loss_opts"))
        entries["fusion"].check_params(config.params("fusion_opts"))
    from benchbox.metrics.suite import metrics_for

    for task, used in (("fusion", config.has_fusion), ("segmentation", config.has_seg)):
        if used:
            metrics_for(task, registry)  # a duplicated metric name fails now, not after training
    from benchbox.engine.selection import resolve_objective

    # --select's metric is known now; its region suffix only once the dataset is built.
    resolve_objective(config.select, config.has_seg, registry, {})
    device = dist.device if dist is not None else resolve_device(config.device)
    amp = resolve_amp(config.amp, device)
    main = dist is None or dist.is_main
    rank = dist.rank if dist is not None else 0
    from benchbox.engine.augment import Augmenter, build_transforms

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
    for path, flag in (
        (config.fusion_weights, "--fusion-weights"),
        (config.seg_weights, "--seg-weights"),
    ):
        if path and not Path(path).is_file():
            raise errors.ConfigError(f"{flag} {path}: no such file")
    if config.fusion_weights and not config.has_fusion:
        raise errors.ConfigError("--fusion-weights given but --fusion is none")
    if config.seg_weights and not config.has_seg:
        raise errors.ConfigError("--seg-weights given but --seg is none")

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

    fusion = segmenter = seg_loss = fusion_loss = None
    if config.has_fusion:
        fusion = entries["fusion"].build(**config.params("fusion_opts"))
        if config.fusion_weights:
            from benchbox.records.weights import load_weights

            load_weights(fusion, config.fusion_weights)
        if any(p.requires_grad for p in fusion.parameters()):
            entries["fusion_loss"] = fusion_loss_entry
            fusion_loss = fusion_loss_entry.build(**config.params("fusion_loss_opts"))
    if config.has_seg:
        in_channels = 1 if config.has_fusion else 2
        segmenter = entries["segmenter"].build(
            in_channels=in_channels, num_classes=dataset.num_classes, **config.params("seg_opts")
        )
        if config.seg_weights:
            from benchbox.records.weights import load_weights

            load_weights(segmenter, config.seg_weights)
        seg_loss = entries["loss"].build(**config.params("loss_opts"))

    # Convolutions follow their weights' memory format: converting the modules is enough
    # (the sources are one-channel, the same bytes in either format).
    memory = torch.channels_last if config.channels_last else torch.preserve_format
    for module in (fusion, segmenter, seg_loss, fusion_loss):
        if module is not None and isinstance(module, torch.nn.Module):
            module.to(device)
            module.to(memory_format=memory)
    objective = resolve_objective(
        config.select, config.has_seg, registry, dataset.eval_regions() if config.has_seg else {}
    )
    prepared = Prepared(
        config,
        registry,
        dataset,
        fusion,
        segmenter,
        seg_loss,
        fusion_loss,
        device,
        amp,
        "",
        entries,
        objective,
        trackers,
        augmenter,
        dist,
    )
    probe_size = min(config.image_size, 64)
    probe = torch.zeros(1, 1, probe_size, probe_size, device=device)
    _check_outputs(prepared, probe)
    with blame_plugins(prepared.components(), "on a probe input"):
        if segmenter is not None:
            channels = 1 if fusion is not None else 2
            prepared.amp_observed = observed_dtype(
                amp, segmenter, probe.expand(1, channels, -1, -1).contiguous()
            )
        else:
            assert fusion is not None
            prepared.amp_observed = observed_dtype(amp, fusion, probe, probe)
    if rank:
        seed_everything(rank_seed(config.seed, rank), config.deterministic, device.type == "cuda")
    return prepared
