"""The contracts of fusion models and segmenters (``register_fusions``,
``register_segmenters`` in :mod:`benchbox.hookspecs`).

Each model is built with its default parameters and run on random CPU inputs of every
dimensionality it declares in ``info["dims"]`` (default ``(2,)``; 3D inputs gain a depth
axis, ``(B, C, D, H, W)``), in training mode with a backward pass, then in evaluation
mode on a single sample. A segmenter whose factory declares the run-wide arguments of
:data:`benchbox.engine.dims.CONTEXT` is built once per dimensionality with them
(``spatial_dims``, ``patch_size`` the input's size, ``spacing`` ``None``), as a run
builds it.
"""

from __future__ import annotations

import torch
from torch import nn

from benchbox import Entry
from benchbox.testing.contracts._common import (
    FUSION_SIZES,
    SEGMENTER_SIZES,
    build,
    calling,
    check_gradients,
    dims_of,
    expect_module,
    expect_tensor,
    segmenter_size,
    trainable,
)
from benchbox.testing.result import ContractError

__all__ = ["SEGMENTER_CASES", "check_fusion", "check_segmenter"]

#: ``(in_channels, num_classes)`` a segmenter is built with: behind a fusion model (one
#: channel, binary) and on the two stacked sources (``--fusion none``) with three classes.
SEGMENTER_CASES: tuple[tuple[int, int], ...] = ((1, 2), (2, 3))
_BATCH = 2


def check_fusion(entry: Entry) -> str:
    """``forward(a, b)`` maps two ``float32 (B, 1, ...)`` sources in ``[0, 1]`` to one
    ``float32 (B, 1, ...)`` image in ``[0, 1]`` of the same size; trainable parameters
    get finite, non-zero gradients. A model without any is legal (a baseline)."""
    dims = dims_of(entry, FUSION_SIZES)
    model = build(entry)
    expect_module(model, "the built model")
    params = trainable(model)
    for d in dims:
        size = FUSION_SIZES[d]
        a, b = torch.rand(_BATCH, 1, *size), torch.rand(_BATCH, 1, *size)
        what = f"forward(a, b) on {(_BATCH, 1, *size)} sources"
        with calling(entry, what):
            fused = model.train()(a, b)
        expect_tensor(fused, what, (_BATCH, 1, *size), dtype=torch.float32, unit_range=True)
        if params:
            _expect_graph(fused, what)
            with calling(entry, f"backward through {what}"):
                (fused - a).square().mean().backward()
            check_gradients(params, f"backward through {what}")
            model.zero_grad(set_to_none=True)
        what = f"forward(a, b) in eval mode on {(1, 1, *size)} sources"
        with torch.no_grad(), calling(entry, what):
            single = model.eval()(a[:1], b[:1])
        expect_tensor(single, what, (1, 1, *size), dtype=torch.float32, unit_range=True)
    return "" if params else "no trainable parameter (a baseline: not trained)"


def check_segmenter(entry: Entry) -> str:
    """``factory(in_channels, num_classes)`` maps ``float32 (B, in_channels, ...)`` to
    floating logits ``(B, num_classes, ...)``; a cross-entropy loss on them gives every
    trainable parameter a finite gradient, some non-zero."""
    dims = dims_of(entry, SEGMENTER_SIZES)
    declared = {p.name for p in entry.parameters}
    for in_channels, num_classes in SEGMENTER_CASES:
        model = None
        for d in dims:
            size = segmenter_size(entry, d)
            context = {"spatial_dims": d, "patch_size": size, "spacing": None}
            context = {k: v for k, v in context.items() if k in declared}
            args = {"in_channels": in_channels, "num_classes": num_classes, **context}
            built = "built with " + ", ".join(f"{k}={v}" for k, v in args.items())
            if model is None or context:
                model = build(entry, **args)
                expect_module(model, f"the model {built}")
            params = trainable(model)
            if not params:
                raise ContractError(f"the model {built} has no trainable parameter")
            x = torch.rand(_BATCH, in_channels, *size)
            what = f"forward on {(_BATCH, in_channels, *size)} ({built})"
            with calling(entry, what):
                logits = model.train()(x)
            expect_tensor(logits, what, (_BATCH, num_classes, *size), floating=True)
            _expect_graph(logits, what)
            target = torch.randint(0, num_classes, (_BATCH, *size))
            with calling(entry, f"backward through {what}"):
                nn.functional.cross_entropy(logits.float(), target).backward()
            check_gradients(params, f"backward through {what}")
            model.zero_grad(set_to_none=True)
            what = f"forward in eval mode on {(1, in_channels, *size)} ({built})"
            with torch.no_grad(), calling(entry, what):
                single = model.eval()(x[:1])
            expect_tensor(single, what, (1, num_classes, *size), floating=True)
    return ""


def _expect_graph(out: torch.Tensor, what: str) -> None:
    if not out.requires_grad:
        raise ContractError(f"{what} returned a tensor detached from the trainable parameters")
