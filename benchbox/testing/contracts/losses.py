"""The loss contract (``register_losses`` in :mod:`benchbox.hookspecs`), for both tasks."""

from __future__ import annotations

from typing import Any

import torch

from benchbox import Entry
from benchbox.testing.contracts._common import build, calling, dims_of, expect_module, shape
from benchbox.testing.result import ContractError

__all__ = ["check_loss"]

_TASKS = ("segmentation", "fusion")
#: Segmentation inputs: ``K`` output channels (1 is a sigmoid output) and the target.
_CLASSES = (1, 2, 3)
_SEG_CASES = ("random", "empty", "extreme")
_FUSION_CASES = ("random", "constant")
#: Spatial sizes of the segmentation inputs by dimensionality (``info["dims"]``).
_SIZES = {2: (16, 16), 3: (8, 16, 16)}


def check_loss(entry: Entry) -> str:
    """A loss is a ``torch.nn.Module`` returning a finite floating scalar, with finite
    gradients in its first argument, on the inputs of its ``info["task"]``: random,
    empty-target and extreme logits for segmentation (``K`` = 1, 2 and 3; in 3D too,
    ``(B, K, D, H, W)``, when ``info["dims"]`` holds 3), random and flat images for
    fusion."""
    task = entry.info.get("task")
    if task not in _TASKS:
        raise ContractError(f"info task={task!r}; expected one of {', '.join(_TASKS)}")
    loss_fn = build(entry)
    expect_module(loss_fn, "the built loss")
    if task == "segmentation":
        for spatial in [_SIZES[d] for d in dims_of(entry, _SIZES)]:
            for k in _CLASSES:
                for case in _SEG_CASES:
                    _segmentation(entry, loss_fn, k, case, spatial)
    else:
        for case in _FUSION_CASES:
            _fusion(entry, loss_fn, case)
    return ""


def _segmentation(
    entry: Entry, loss_fn: Any, k: int, case: str, spatial: tuple[int, ...] = (16, 16)
) -> None:
    logits = torch.randn(2, k, *spatial) * (1e4 if case == "extreme" else 3)
    logits.requires_grad_(True)
    if case == "empty":
        target = torch.zeros(2, *spatial, dtype=torch.int64)
    else:
        target = torch.randint(0, max(k, 2), (2, *spatial))
    what = f"loss(logits {shape(logits)}, target {shape(target)}) on {case} logits"
    _scalar_with_gradient(entry, lambda: loss_fn(logits, target), logits, what)


def _fusion(entry: Entry, loss_fn: Any, case: str) -> None:
    if case == "random":
        raw = torch.randn(2, 1, 32, 32, requires_grad=True)
        a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    else:  # flat images: zero variance in every window of a local statistic
        raw = torch.zeros(2, 1, 32, 32, requires_grad=True)
        a, b = torch.full((2, 1, 32, 32), 0.5), torch.zeros(2, 1, 32, 32)
    what = f"loss(fused, a, b) on {case} (2, 1, 32, 32) images"
    _scalar_with_gradient(entry, lambda: loss_fn(torch.sigmoid(raw), a, b), raw, what)


def _scalar_with_gradient(entry: Entry, compute: Any, leaf: torch.Tensor, what: str) -> None:
    with calling(entry, what):
        loss = compute()
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = shape(loss) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ContractError(f"{what} returned {got}; expected a scalar tensor")
    if not loss.is_floating_point() or not torch.isfinite(loss):
        raise ContractError(f"{what} returned {loss.item()!r} ({loss.dtype})")
    if not loss.requires_grad:
        raise ContractError(f"{what} is not differentiable in its first argument")
    with calling(entry, f"backward of {what}"):
        loss.backward()
    if leaf.grad is None or not torch.isfinite(leaf.grad).all():
        raise ContractError(f"backward of {what}: no finite gradient in its first argument")
