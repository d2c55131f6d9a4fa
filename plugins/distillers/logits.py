"""Distillation of segmentation logits: Hinton's class-probability KL and channel-wise
distillation (CWD).

Both soften the logits by a temperature ``T`` and return ``T**2`` times a KL divergence
``KL(teacher || student)`` (the ``T**2`` keeps the gradients' scale independent of
``T``, as Hinton et al. advise). They differ in what is a distribution:

* ``logits`` (Hinton et al., 2015): the ``K`` class probabilities of each pixel,
  ``softmax`` over classes; the KL is averaged over the pixels of the batch;
* ``cwd`` (Shu et al., 2021, "Channel-wise knowledge distillation for dense
  prediction"): each class map, ``softmax`` over its ``H * W`` pixels, so the student
  learns where the teacher puts each class; the KL is averaged over images and
  classes.

A one-channel (sigmoid) output ``z`` is the two-class softmax of ``(0, z)``, as in the
segmentation losses; ``logits`` always reads it so, ``cwd`` only when the other run has
two channels (one sigmoid map is itself a distribution over the pixels).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from benchbox import DataError

__all__ = ["ChannelWiseDistiller", "LogitsDistiller", "pair"]


def _two_class(logits: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(logits), logits], dim=1)


def pair(
    student: Mapping[str, torch.Tensor],
    teacher: Mapping[str, torch.Tensor],
    key: str,
    distiller: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's and the teacher's ``key`` output, the teacher's detached, both in
    at least float32 (softmax and logarithms under autocast lose too much in bf16).

    Raises:
        DataError: a run does not give ``key``, or the two shapes differ.
    """
    for who, outputs in (("student", student), ("teacher", teacher)):
        if key not in outputs:
            raise DataError(
                f"distiller {distiller!r} compares {key!r}, which the {who} does not give "
                f"(it gives {', '.join(outputs) or 'nothing'})"
            )
    s, t = student[key], teacher[key].detach()
    dtype = torch.promote_types(s.dtype, torch.float32)
    return s.to(dtype), t.to(dtype)


def _logits_pair(
    student: Mapping[str, torch.Tensor],
    teacher: Mapping[str, torch.Tensor],
    distiller: str,
    *,
    always_two_class: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    s, t = pair(student, teacher, "logits", distiller)
    if s.dim() not in (4, 5) or t.dim() != s.dim():
        raise DataError(
            f"distiller {distiller!r} expects logits (B, K, H, W) or (B, K, D, H, W), got "
            f"{tuple(s.shape)} and {tuple(t.shape)}"
        )
    if always_two_class or {s.shape[1], t.shape[1]} == {1, 2}:
        s = _two_class(s) if s.shape[1] == 1 else s
        t = _two_class(t) if t.shape[1] == 1 else t
    if s.shape != t.shape:
        raise DataError(
            f"distiller {distiller!r}: student logits {tuple(s.shape)} and teacher logits "
            f"{tuple(t.shape)} differ"
        )
    return s, t


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


class LogitsDistiller(nn.Module):
    """``weight * T**2 * mean over pixels of KL(p_t || p_s)``, with ``p = softmax(z / T)``
    over the classes of each pixel (Hinton et al., 2015).

    Args:
        temperature: ``T`` (> 0); higher values soften the probabilities and pass on
            more of the teacher's ranking of the wrong classes.
        weight: a factor of this distiller's term (> 0), besides ``--distill-weight``.

    Shapes: ``student["logits"]`` and ``teacher["logits"]`` ``(B, K, H, W)``, or
    ``(B, K, D, H, W)`` in a 3D run (pixels are then voxels) -> scalar ``>= 0``, 0 for
    equal logits.
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = _positive("temperature", temperature)
        self.weight = _positive("weight", weight)

    def forward(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        s, t = _logits_pair(student, teacher, "logits", always_two_class=True)
        temp = self.temperature
        log_s = F.log_softmax(s / temp, dim=1)
        log_t = F.log_softmax(t / temp, dim=1)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
        return self.weight * temp**2 * kl.mean()


class ChannelWiseDistiller(nn.Module):
    """``weight * T**2 * mean over images and classes of KL(q_t || q_s)``, with
    ``q = softmax(z_c / T)`` over the ``H * W`` pixels of each class map ``z_c``
    (channel-wise distillation, Shu et al., 2021).

    Args:
        temperature: ``T`` (> 0); Shu et al. use 4 for segmentation logits.
        weight: a factor of this distiller's term (> 0), besides ``--distill-weight``.

    Shapes: ``student["logits"]`` and ``teacher["logits"]`` ``(B, K, H, W)``, or
    ``(B, K, D, H, W)`` in a 3D run (each class map softened over its ``D * H * W``
    voxels) -> scalar ``>= 0``, 0 for equal logits (or logits that differ by a constant
    per class map).
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = _positive("temperature", temperature)
        self.weight = _positive("weight", weight)

    def forward(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        s, t = _logits_pair(student, teacher, "cwd", always_two_class=False)
        temp = self.temperature
        log_s = F.log_softmax(s.flatten(2) / temp, dim=2)
        log_t = F.log_softmax(t.flatten(2) / temp, dim=2)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=2)
        return self.weight * temp**2 * kl.mean()
