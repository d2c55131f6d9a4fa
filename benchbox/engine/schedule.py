"""The training schedule of ``benchbox run``: fusion pre-training, then joint training.

Each stage is one :func:`benchbox.engine.train.train_stage` call; the last stage is the main
one, validated by the :class:`benchbox.engine.selection.Monitor` after each epoch. With a
teacher (``--teacher``) the main stage's loss includes the distillation loss
(:func:`benchbox.engine.models.joint_loss`); fusion pre-training is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchbox.config.run import RunConfig
from benchbox.engine.models import Models, fusion_loss, joint_loss
from benchbox.engine.train import ProgressReporter

if TYPE_CHECKING:
    from benchbox.engine.prepare import Prepared
    from benchbox.engine.selection import Monitor

__all__ = ["fusion_step", "joint_fusion", "joint_step", "on_device", "train_stages"]

#: One training step's loss on a batch from the loader.
Step = Callable[[dict[str, Any]], Any]


def train_stages(
    p: Prepared, progress: ProgressReporter | None, monitor: Monitor | None
) -> list[Any]:
    """Fusion pre-training (or fusion-only training), then joint training.

    The last stage is the main one: ``monitor`` validates it and may stop it early. In a
    distributed run (``p.dist``) every rank runs this with its DDP-wrapped models on its
    share of each batch; rank 0 alone has a ``monitor`` (the others pass ``None``) and
    its decisions reach them through :func:`benchbox.engine.train.train_stage`.
    """
    from benchbox.engine.distributed import peers_checked

    with peers_checked(p.dist):
        return _train_stages(p, progress, monitor)


def on_device(
    batch: dict[str, Any], keys: tuple[str, ...], device: Any, augmenter: Any = None
) -> dict[str, Any]:
    """A training batch's tensors on the device, augmented by the run's transforms."""
    import torch

    moved = {k: batch[k].to(device) for k in keys}
    if augmenter:
        # The step runs under autocast; the transforms resample in float32.
        with torch.autocast(device.type, enabled=False):
            moved = augmenter(moved)
    return moved


def fusion_step(
    models: Models,
    device: Any,
    augmenter: Any = None,
    net: Any = None,
    *,
    distill: bool = False,
) -> Step:
    """The loss of one step of fusion (pre-)training on a loader batch; with ``distill``
    (a fusion-only run's main stage, when it has a teacher) the distillation loss too."""

    def step(batch: dict[str, Any]) -> Any:
        moved = on_device(batch, ("a", "b"), device, augmenter)
        return fusion_loss(models, moved, net, distill=distill)

    return step


def joint_step(
    models: Models,
    config: RunConfig,
    device: Any,
    augmenter: Any = None,
    nets: tuple[Any, Any] | None = None,
) -> Step:
    """The loss of one step of the main stage on a loader batch: joint training (or
    segmentation-only with ``--fusion none``), the fusion model trained with the
    segmenter unless it is frozen or has no parameters. ``benchbox bench`` times this
    same step."""
    train_fusion = joint_fusion(models, config)

    def step(batch: dict[str, Any]) -> Any:
        moved = on_device(batch, ("a", "b", "mask"), device, augmenter)
        return joint_loss(
            models, moved, fusion_weight=config.fusion_weight, train_fusion=train_fusion,
            nets=nets,
        )  # fmt: skip

    return step


def joint_fusion(models: Models, config: RunConfig) -> bool:
    """Whether the main stage trains the fusion model with the segmenter."""
    return models.fusion_trainable and not config.freeze_fusion


def _train_stages(
    p: Prepared, progress: ProgressReporter | None, monitor: Monitor | None
) -> list[Any]:
    from benchbox.engine.train import LabelCheckedLoader, make_loader, train_stage

    c = p.config
    dist = p.dist
    loader = make_loader(
        p.dataset.split("train"),
        c.batch_size,
        shuffle=True,
        seed=c.seed,
        num_workers=c.num_workers,
        drop_last=True,
        rank=dist.rank if dist else 0,
        world_size=dist.world_size if dist else 1,
    )

    def net(module: Any) -> Any:
        """The module to train through: its DDP wrapper in a distributed run."""
        return dist.wrap(module) if dist is not None else module

    def callback(stage: str, epochs: int, main: bool) -> Any:
        return monitor.callback(stage, epochs, main) if monitor is not None else None

    stats = []
    models = p.models
    fusion_epochs = c.epochs if not c.has_seg else c.fusion_epochs
    if models.fusion_trainable and fusion_epochs > 0:
        assert models.fusion_loss is not None
        # A fusion-only run's fusion stage is its main one: the teacher teaches there.
        distill = not c.has_seg and models.distillation is not None
        params = list(models.fusion.parameters())
        if distill and models.distillation is not None:
            params += models.distillation.parameters()
        models.fusion.train()
        stats.append(
            train_stage(
                "fusion",
                params,
                fusion_step(models, p.device, p.augmenter, net(models.fusion), distill=distill),
                loader,
                epochs=fusion_epochs,
                lr=c.fusion_lr,
                weight_decay=c.weight_decay,
                warmup_steps=c.warmup_steps,
                amp=p.amp,
                progress=progress,
                on_epoch_end=callback("fusion", fusion_epochs, main=not c.has_seg),
                dist=dist,
            )
        )
    if models.segmenter is None:
        return stats

    train_fusion = joint_fusion(models, c)
    if models.fusion is not None:
        models.fusion.train(train_fusion)
    nets = (net(models.fusion) if train_fusion else models.fusion, net(models.segmenter))
    models.segmenter.train()
    name = "joint" if models.fusion is not None else "segmentation"
    stats.append(
        train_stage(
            name,
            models.trainable(joint=train_fusion),
            joint_step(models, c, p.device, p.augmenter, nets),
            LabelCheckedLoader(loader, p.dataset.num_classes),
            epochs=c.epochs,
            lr=c.lr,
            weight_decay=c.weight_decay,
            warmup_steps=c.warmup_steps,
            amp=p.amp,
            progress=progress,
            on_epoch_end=callback(name, c.epochs, main=True),
            dist=dist,
        )
    )
    return stats
