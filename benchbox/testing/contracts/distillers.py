"""The distiller contract (``register_distillers`` in :mod:`benchbox.hookspecs`)."""

from __future__ import annotations

from typing import Any

import torch

from benchbox import Entry
from benchbox.testing.contracts._common import build, calling, expect_module, shape
from benchbox.testing.result import ContractError

__all__ = ["check_distiller"]

_TASKS = ("segmentation", "fusion")
#: Segmentation outputs: ``K`` channels (1 is a sigmoid output).
_CLASSES = (1, 2, 3)
#: How far from 0 a distiller may be on identical outputs (float32 rounding).
_IDENTICAL_ATOL = 1e-5


def check_distiller(entry: Entry) -> str:
    """A distiller is a ``torch.nn.Module`` whose ``forward(student, teacher)`` returns a
    finite floating scalar on random, extreme and identical outputs of its
    ``info["task"]`` (logits with ``K`` = 1, 2 and 3 channels; fused images), 0 (to
    float rounding) on identical ones, with a finite, non-zero gradient in the student's
    output and none in the teacher's (which the distiller must detach)."""
    task = entry.info.get("task")
    if task not in _TASKS:
        raise ContractError(f"info task={task!r}; expected one of {', '.join(_TASKS)}")
    distiller = build(entry)
    expect_module(distiller, "the built distiller")
    cases = [(k, case) for k in _CLASSES for case in ("random", "extreme", "identical")]
    if task == "fusion":
        cases = [(1, case) for case in ("random", "constant", "identical")]
    for k, case in cases:
        _check_case(entry, distiller, task, k, case)
    return ""


def _outputs(task: str, k: int, case: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Leaf tensors ``(student, teacher)`` of the task's output, and a description."""
    if task == "segmentation":
        scale = 1e4 if case == "extreme" else 3.0
        student = torch.randn(2, k, 16, 24) * scale
        teacher = student.clone() if case == "identical" else torch.randn(2, k, 16, 24) * scale
        what = f"logits {shape(student)} ({case})"
    else:
        if case == "constant":
            student, teacher = torch.full((2, 1, 32, 32), 0.5), torch.zeros(2, 1, 32, 32)
        else:
            student = torch.rand(2, 1, 32, 32)
            teacher = student.clone() if case == "identical" else torch.rand(2, 1, 32, 32)
        what = f"fused images {shape(student)} ({case})"
    return student.requires_grad_(True), teacher.requires_grad_(True), what


def _check_case(entry: Entry, distiller: Any, task: str, k: int, case: str) -> None:
    s_out, t_out, what = _outputs(task, k, case)
    # Both runs give both outputs, as a joint run's pipeline does; the other output is
    # constant, so a distiller that reads the wrong one fails the gradient check.
    other = {"fused": torch.rand(2, 1, 16, 24)} if task == "segmentation" else {}
    if task == "fusion":
        other = {"logits": torch.randn(2, 2, 32, 32)}
    key = "logits" if task == "segmentation" else "fused"
    student, teacher = {key: s_out, **other}, {key: t_out, **other}
    call = f"forward(student, teacher) on {what}"
    with calling(entry, call):
        value = distiller(student, teacher)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        got = shape(value) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ContractError(f"{call} returned {got}; expected a scalar tensor")
    if not value.is_floating_point() or not torch.isfinite(value):
        raise ContractError(f"{call} returned {value.item()!r} ({value.dtype})")
    if case == "identical" and abs(float(value.detach())) > _IDENTICAL_ATOL:
        raise ContractError(
            f"{call} returned {float(value.detach()):.3g}; expected 0 for equal outputs"
        )
    if not value.requires_grad:
        raise ContractError(f"{call} is not differentiable in the student's {key}")
    with calling(entry, f"backward of {call}"):
        value.backward()
    if s_out.grad is None or not torch.isfinite(s_out.grad).all():
        raise ContractError(f"backward of {call}: no finite gradient in the student's {key}")
    if case == "random" and not s_out.grad.abs().sum() > 0:
        raise ContractError(f"backward of {call}: the student's {key} gets a zero gradient")
    if t_out.grad is not None:
        raise ContractError(
            f"backward of {call}: a gradient reached the teacher's {key}; detach it "
            "(the teacher is never trained)"
        )
