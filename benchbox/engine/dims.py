"""2D or 3D: decided once per run, from the config and what the components declare.

A run is 3D when it has a ``--patch-size`` (patches in, whole volumes out), else 2D
(slices in, slices out). Each component declares the dimensionalities it supports in
``info["dims"]`` (default ``(2,)``, see :class:`benchbox.hookspecs.Register`);
:func:`run_dims`, called by the pre-flight check (:func:`benchbox.engine.models.check`),
refuses a mismatch in one line, naming the component and what would fit.

The combinations allowed in a 3D run:

* the dataset and the segmenter must declare 3; so must every ``--augment`` transform
  and the segmentation loss;
* a fusion model that declares 3 receives volumes ``(B, 1, D, H, W)``; one that
  declares only 2 is applied slice by slice (:func:`slice_wise`: the depth axis folded
  into the batch and back), so every 2D fusion model can feed a 3D segmenter. Either
  way the contract holds: sources in ``[0, 1]`` in, one fused volume in ``[0, 1]`` out;
* the fusion loss always sees 2D slices of the fused and source volumes
  (:func:`fold_depth`): its contract is written for images.

A segmenter factory receives the run's geometry when it declares these parameters
(:data:`CONTEXT`): ``spatial_dims`` (2 or 3), ``patch_size`` (the training input's
spatial size: the patch in 3D, ``(image_size, image_size)`` in 2D) and ``spacing`` (the
voxel size in mm of ``--spacing``, or ``None``). The user does not set them with
``--seg-opt``: they follow from ``--patch-size``, ``--image-size`` and ``--spacing``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.hooks.registry import Entry, Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONTEXT",
    "declared_dims",
    "fold_depth",
    "require_monai",
    "run_dims",
    "segmenter_context",
    "slice_wise",
]

#: The run-wide arguments a segmenter factory receives when it declares them.
CONTEXT = ("spatial_dims", "patch_size", "spacing")


def declared_dims(entry: Entry) -> tuple[int, ...]:
    """The dimensionalities ``entry`` declares in ``info["dims"]`` (default ``(2,)``)."""
    dims = entry.info.get("dims", (2,))
    return (dims,) if isinstance(dims, int) else tuple(dims)


def _names(registry: Registry, kind: str, dims: int) -> str:
    names = [e.name for e in registry.list(kind) if dims in declared_dims(e)]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return shown or "none installed"


def run_dims(config: RunConfig, entries: Mapping[str, Entry], registry: Registry) -> int:
    """The run's dimensionality (2 or 3), checked against every component's ``dims``.

    Raises:
        ConfigError: a component that does not support it (one line naming it and the
            installed ones that do), a ``--seg-opt`` that sets a run-wide argument of
            :data:`CONTEXT`, or MONAI missing for a 3D run.
    """
    dims = 3 if config.is_3d else 2
    dataset = entries.get("dataset")  # none when benchbox bench checks a config
    if dataset is not None and dims not in declared_dims(dataset):
        if dims == 3:
            raise errors.ConfigError(
                f"--patch-size makes this a 3D run, but dataset {dataset.name!r} is 2D "
                f"(3D datasets: {_names(registry, 'dataset', 3)})"
            )
        raise errors.ConfigError(
            f"dataset {dataset.name!r} is 3D only: give --patch-size D,H,W (e.g. 32,64,64) "
            "for a 3D run"
        )
    segmenter = entries.get("segmenter")
    if segmenter is not None and dims not in declared_dims(segmenter):
        if dims == 3:
            raise errors.ConfigError(
                f"segmenter {segmenter.name!r} is 2D only, and --patch-size makes this a 3D "
                f"run (3D segmenters: {_names(registry, 'segmenter', 3)})"
            )
        raise errors.ConfigError(
            f"segmenter {segmenter.name!r} is 3D only: give --patch-size D,H,W and a 3D "
            f"dataset ({_names(registry, 'dataset', 3)}), or a 2D segmenter"
        )
    loss = entries.get("loss")
    if loss is not None and dims not in declared_dims(loss):
        raise errors.ConfigError(
            f"loss {loss.name!r} is 2D only; a 3D run needs a segmentation loss for volumes "
            f"({_names(registry, 'loss', 3)})"
        )
    for name in config.augment:
        transform = registry.get("transform", name)
        if dims not in declared_dims(transform):
            raise errors.ConfigError(
                f"transform {name!r} is {'2D' if dims == 3 else '3D'} only; this is a "
                f"{dims}D run (--augment choices: {_names(registry, 'transform', dims)})"
            )
    for key in CONTEXT:
        if key in config.params("seg_opts") and segmenter is not None:
            raise errors.ConfigError(
                f"--seg-opt {key} is set by the run (--patch-size, --image-size, --spacing); "
                "leave it out"
            )
    if dims == 3:
        require_monai()
    return dims


def require_monai() -> None:
    """Fail in one line when MONAI, which the 3D path runs on, is not importable."""
    import importlib.util

    if importlib.util.find_spec("monai") is None:
        raise errors.ConfigError(
            "3D runs need MONAI (sliding-window inference, the monai-* segmenters), which "
            "is not installed: pip install 'monai>=1.4' (a dependency of benchbox)"
        )


def segmenter_context(config: RunConfig, entry: Entry) -> dict[str, Any]:
    """The run-wide arguments of :data:`CONTEXT` that the segmenter's factory declares."""
    patch = config.patch
    context: dict[str, Any] = {
        "spatial_dims": 3 if patch else 2,
        "patch_size": tuple(patch) if patch else (config.image_size, config.image_size),
        "spacing": config.target_spacing,
    }
    declared = {p.name for p in entry.parameters}
    return {k: v for k, v in context.items() if k in declared}


def fold_depth(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, D, H, W)`` -> ``(B * D, C, H, W)``, slices in order; 4D passes through."""
    if x.dim() != 5:
        return x
    return x.transpose(1, 2).flatten(0, 1)


def _unfold_depth(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Undo :func:`fold_depth` for an output ``(B * D, C', H, W)`` of an input ``like``."""
    # reshape with every size read from a tensor, not unflatten: an ONNX graph traced
    # through unflatten kept the trace's spatial size downstream (a fixed-size export).
    return y.reshape(like.shape[0], like.shape[2], *y.shape[1:]).transpose(1, 2)


def slice_wise(module: torch.nn.Module) -> torch.nn.Module:
    """Make a 2D fusion model take volumes: forward hooks fold the depth axis of 5D
    sources into the batch and unfold the fused slices, so ``(B, 1, D, H, W)`` sources
    give a ``(B, 1, D, H, W)`` fused volume; 4D inputs pass untouched.

    Hooks rather than a wrapper keep the model's state dict the 2D model's own (a 2D
    checkpoint loads into it, and back).
    """
    shapes: list[Any] = []

    def before(_module: Any, args: Sequence[Any]) -> tuple[Any, ...] | None:
        if not args or getattr(args[0], "dim", lambda: 0)() != 5:
            shapes.append(None)
            return None
        shapes.append(args[0])
        return tuple(fold_depth(x) for x in args)

    def after(_module: Any, _args: Any, output: Any) -> Any:
        like = shapes.pop()
        return output if like is None else _unfold_depth(output, like)

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)
    return module
