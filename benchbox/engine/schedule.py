"""The training schedule of ``benchbox run``: fusion pre-training, then joint training.

Each stage is one :func:`benchbox.engine.train.train_stage` call; the last stage is the main
one, validated by the :class:`benchbox.engine.selection.Monitor` after each epoch. With a
teacher (``--teacher``) the main stage's loss includes the distillation loss
(:func:`benchbox.engine.models.joint_loss`); fusion pre-training is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchbox.engine.train import ProgressReporter

if TYPE_CHECKING:
    from benchbox.engine.prepare import Prepared
    from benchbox.engine.selection import Monitor


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


def _train_stages(
    p: Prepared, progress: ProgressReporter | None, monitor: Monitor | None
) -> list[Any]:
    import torch

    from benchbox.engine.models import fusion_loss, joint_loss
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

    dev = p.device
    stats = []
    augment = p.augmenter

    def on_device(batch: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        """The batch's tensors on the device, augmented (training batches only)."""
        moved = {k: batch[k].to(dev) for k in keys}
        if augment:
            # The step runs under autocast; the transforms resample in float32.
            with torch.autocast(dev.type, enabled=False):
                moved = augment(moved)
        return moved

    models = p.models
    fusion_epochs = c.epochs if not c.has_seg else c.fusion_epochs
    if models.fusion_trainable and fusion_epochs > 0:
        assert models.fusion_loss is not None

        fusion_net = net(models.fusion)
        # A fusion-only run's fusion stage is its main one: the teacher teaches there.
        distill = not c.has_seg and models.distillation is not None
        params = list(models.fusion.parameters())
        if distill and models.distillation is not None:
            params += models.distillation.parameters()

        def fusion_step(batch: dict[str, Any]) -> torch.Tensor:
            return fusion_loss(models, on_device(batch, ("a", "b")), fusion_net, distill=distill)

        models.fusion.train()
        stats.append(
            train_stage(
                "fusion",
                params,
                fusion_step,
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

    joint_fusion = models.fusion_trainable and not c.freeze_fusion
    if models.fusion is not None:
        models.fusion.train(joint_fusion)
    nets = (net(models.fusion) if joint_fusion else models.fusion, net(models.segmenter))

    def joint_step(batch: dict[str, Any]) -> torch.Tensor:
        moved = on_device(batch, ("a", "b", "mask"))
        return joint_loss(
            models, moved, fusion_weight=c.fusion_weight, train_fusion=joint_fusion, nets=nets
        )

    models.segmenter.train()
    name = "joint" if models.fusion is not None else "segmentation"
    stats.append(
        train_stage(
            name,
            models.trainable(joint=joint_fusion),
            joint_step,
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
