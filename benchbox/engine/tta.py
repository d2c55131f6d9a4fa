"""Test-time augmentation of the segmenter: mirrored passes, probabilities averaged.

``--tta`` of ``benchbox run``:

* ``none`` (default): one forward pass per slice.
* ``flip``: the segmenter also sees each slice mirrored left-right, top-bottom and
  both (4 passes); each pass's class probabilities are mirrored back and the 4 are
  averaged before the argmax. This is nnU-Net's test-time mirroring, for 2D slices.

Only the segmenter is augmented: the fused image (and so every fusion metric) is one
pass, as without ``--tta``. Checkpoint selection scores single passes, every epoch, as
nnU-Net's per-epoch validation does; the selected checkpoint's final validation
(``--postprocess auto``) and the test split use ``--tta``, and so does ``benchbox
predict``. Inference images/s count slices, not passes: with ``flip`` the segmenter
runs 4 times per slice (the fusion model once), and the speed drops accordingly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from benchbox.config.run import TTA_MODES as MODES

if TYPE_CHECKING:
    import torch

__all__ = ["FLIP", "NONE", "passes", "probabilities", "segment"]

NONE, FLIP = MODES

#: The image axes (of ``(B, C, H, W)``) mirrored in each pass of a mode.
_PASSES: dict[str, tuple[tuple[int, ...], ...]] = {
    NONE: ((),),
    FLIP: ((), (3,), (2,), (2, 3)),
}


def passes(mode: str) -> tuple[tuple[int, ...], ...]:
    """The mirrored axes of each forward pass of ``mode`` (``()``: the slice as it is)."""
    try:
        return _PASSES[mode]
    except KeyError:
        raise ValueError(f"unknown --tta {mode!r} (choices: {', '.join(MODES)})") from None


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, K, H, W)``, K >= 2, of a segmenter's float logits: a
    softmax over classes, or ``1 - p, p`` for a single sigmoid channel."""
    import torch

    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def segment(
    segmenter: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str = NONE
) -> torch.Tensor:
    """The class probabilities of ``segmenter`` on ``x`` ``(B, C, H, W)``, averaged over
    the passes of ``mode``; each pass's output is mirrored back before averaging."""
    first, *others = passes(mode)
    total = _one_pass(segmenter, x, first)
    for dims in others:
        total += _one_pass(segmenter, x, dims)
    return total / (1 + len(others)) if others else total


def _one_pass(
    segmenter: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dims: tuple[int, ...]
) -> torch.Tensor:
    """The probabilities of ``x`` mirrored along ``dims``, mirrored back (``()``: as is)."""
    if not dims:
        return probabilities(segmenter(x).float())
    import torch

    return torch.flip(probabilities(segmenter(torch.flip(x, dims)).float()), dims)
