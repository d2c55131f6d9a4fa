"""Model profile: parameter count and FLOPs of one forward pass.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
the matrix products and convolutions dispatched by the forward pass (``mm``, ``addmm``,
``bmm``, ``convolution``, scaled-dot-product attention, ...) with **one multiply-add
counted as 2 FLOPs**: a ``Conv2d(c_in, c_out, k)`` producing an ``H x W`` map counts
``2 * c_out * c_in * k * k * H * W`` per sample and a ``Linear(n_in, n_out)``
``2 * n_in * n_out``. Bias additions, normalisation, activations, pooling and
interpolation are not counted, so the figure is a lower bound dominated by what costs
most. Divide by 2 to compare with tools that report MACs (``thop``, ``ptflops``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["count_flops", "count_parameters"]


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``model``, each shared tensor counted once.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: torch.nn.Module, *example_inputs: Any) -> int:
    """FLOPs of ``model(*example_inputs)``, forward only (see the module docstring).

    The forward pass runs without gradients and with every submodule in eval mode, so
    it leaves no trace: batch-norm statistics are not updated and each submodule's
    train/eval flag is restored afterwards. Pass a batch of one to get per-sample FLOPs.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(*example_inputs)
        return int(counter.get_total_flops())
    finally:
        for module, training in modes:
            module.training = training
