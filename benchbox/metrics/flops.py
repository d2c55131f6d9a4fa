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


def profile_model(model: torch.nn.Module, *example_inputs: Any) -> dict[str, int]:
    """The profile stored in run records: ``params``, ``trainable_params`` and ``flops``.

    Pass one sample (batch size 1) as ``example_inputs`` so that ``flops`` is per sample.
    """
    return {
        "params": count_parameters(model),
        "trainable_params": count_parameters(model, trainable_only=True),
        "flops": count_flops(model, *example_inputs),
    }


def profile_models(fusion: Any, segmenter: Any, size: int, device: Any) -> dict[str, Any]:
    """Parameter counts and GFLOPs of a run's models for one ``size`` x ``size`` sample:
    ``fusion_params``, ``fusion_gflops``, ``seg_params``, ``seg_gflops`` (those that
    exist; the segmenter takes the fused image, or both sources stacked)."""
    import torch

    x = torch.rand(1, 1, size, size, device=device)
    prof: dict[str, Any] = {}
    if fusion is not None:
        prof["fusion_params"] = count_parameters(fusion)
        prof["fusion_gflops"] = count_flops(fusion.eval(), x, x) / 1e9
    if segmenter is not None:
        channels = 1 if fusion is not None else 2
        prof["seg_params"] = count_parameters(segmenter)
        prof["seg_gflops"] = count_flops(segmenter.eval(), x.expand(1, channels, -1, -1)) / 1e9
    return prof
