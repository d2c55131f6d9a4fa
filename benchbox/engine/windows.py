"""Sliding-window inference of whole volumes (3D runs), on MONAI's implementation.

A volume ``(1, C, D, H, W)`` is covered by windows of the training patch size that
overlap by ``overlap`` (0.5 by default, nnU-Net's and MONAI's usual choice); the windows
are predicted ``batch`` at a time and their outputs blended with a Gaussian importance
map (sigma 1/8 of the window, as nnU-Net weights them), so the centre of a window, where
its prediction sees the most context, counts most. A volume smaller than a window is
padded and cropped back.

This is :func:`monai.inferers.sliding_window_inference`, called directly rather than
re-implemented: it is what MONAI users compare against, it does exactly the above and
returns several outputs (the fused volume and the class probabilities) in one pass, and
``benchmarks/sliding_window.py`` measures benchbox's overhead over calling it alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchbox.config.run import RunConfig

if TYPE_CHECKING:
    import torch

__all__ = ["SIGMA_SCALE", "Windows", "slide"]

#: The Gaussian's standard deviation as a share of the window size (nnU-Net: 1/8).
SIGMA_SCALE = 0.125

#: ``net(a_windows, b_windows) -> (fused or None, probabilities or None)``.
WindowNet = Callable[[Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class Windows:
    """How a volume is cut into windows.

    Attributes:
        size: the window ``(D, H, W)``, the training patch.
        overlap: the share of a window that overlaps its neighbour, in ``[0, 1)``.
        batch: windows per forward pass.
    """

    size: tuple[int, ...]
    overlap: float = 0.5
    batch: int = 2

    @classmethod
    def of(cls, config: RunConfig) -> Windows | None:
        """The windows of a 3D run's config (``--patch-size``, ``--overlap``,
        ``--sw-batch-size``); ``None`` for a 2D run."""
        patch = config.patch
        if patch is None:
            return None
        return cls(tuple(int(n) for n in patch), config.overlap, config.sw_batch_size)


def slide(
    net: WindowNet, a: torch.Tensor, b: torch.Tensor, windows: Windows
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Run ``net`` over every window of the sources ``a``, ``b`` ``(1, 1, D, H, W)``.

    Returns:
        The blended fused volume ``(1, 1, D, H, W)`` and class probabilities
        ``(1, K, D, H, W)``; ``None`` for what ``net`` does not output.
    """
    import torch
    from monai.inferers import sliding_window_inference

    x = torch.cat([a, b], dim=1)
    present: list[bool] = []

    def call(window: torch.Tensor) -> tuple[torch.Tensor, ...]:
        fused, probs = net(window[:, :1], window[:, 1:])
        present[:] = [fused is not None, probs is not None]
        return tuple(o for o in (fused, probs) if o is not None)

    out = sliding_window_inference(
        x,
        roi_size=windows.size,
        sw_batch_size=windows.batch,
        predictor=call,
        overlap=windows.overlap,
        mode="gaussian",
        sigma_scale=SIGMA_SCALE,
    )
    outs: list[Any] = list(out) if isinstance(out, (tuple, list)) else [out]
    fused = outs.pop(0) if present[0] else None
    probs = outs.pop(0) if present[1] else None
    return fused, probs
