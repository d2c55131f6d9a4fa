"""Contract tests for every fusion model, segmenter and loss in the live registry.

The parameters are read from :func:`benchbox.hooks.manager.create_registry` at collection time,
so a component that any installed plugin registers (built-in or third-party) is checked
against the contracts of :mod:`benchbox.hookspecs` without a line added here. Components
built with their default parameters run on tiny CPU tensors. A component registered
with ``slow=True`` in its info is marked ``slow`` (excluded by default).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from benchbox.hooks.manager import create_registry
from benchbox.hooks.registry import Entry

REGISTRY = create_registry()


def _params(kind: str, task: str | None = None) -> list[Any]:
    return [
        pytest.param(
            entry, id=entry.name, marks=[pytest.mark.slow] if entry.info.get("slow") else []
        )
        for entry in REGISTRY.list(kind)
        if task is None or entry.info.get("task") == task
    ]


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _check_gradients(params: list[nn.Parameter], name: str) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads), f"{name}: non-finite gradient"
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: every gradient is zero"


def test_every_installed_plugin_loads() -> None:
    # A plugin that fails to load drops out of the parametrisations below silently.
    assert REGISTRY.load_errors == [], [f"{e.provider}: {e.error}" for e in REGISTRY.load_errors]


def test_the_built_ins_are_covered() -> None:
    for kind, names in {
        "fusion": {"dual", "concat"},
        "segmenter": {"attunet", "unet"},
        "loss": {"dice", "focal", "hybrid", "ssim", "fusion", "maxgrad"},
    }.items():
        assert names <= {e.name for e in REGISTRY.list(kind)}, kind


@pytest.mark.parametrize("entry", _params("fusion"))
def test_fusion_contract(entry: Entry) -> None:
    torch.manual_seed(0)
    model = entry.build()
    assert isinstance(model, nn.Module)
    a, b = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48)
    fused = model.train()(a, b)
    assert fused.shape == (2, 1, 32, 48)
    assert fused.dtype == torch.float32
    assert torch.isfinite(fused).all()
    assert fused.min() >= 0 and fused.max() <= 1, (float(fused.min()), float(fused.max()))

    params = _trainable(model)
    if params:  # a parameter-free baseline is legal and has nothing to train
        (fused - a).square().mean().backward()
        _check_gradients(params, entry.name)

    with torch.no_grad():
        single = model.eval()(a[:1], b[:1])
    assert single.shape == (1, 1, 32, 48)
    assert single.min() >= 0 and single.max() <= 1


@pytest.mark.parametrize("entry", _params("segmenter"))
@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 2), (2, 3)])
def test_segmenter_contract(entry: Entry, in_channels: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = entry.build(in_channels=in_channels, num_classes=num_classes)
    assert isinstance(model, nn.Module)
    x = torch.rand(2, in_channels, 32, 64)
    logits = model.train()(x)
    assert logits.shape == (2, num_classes, 32, 64)
    assert logits.is_floating_point()
    assert torch.isfinite(logits).all()

    params = _trainable(model)
    assert params, f"{entry.name} has no trainable parameter"
    target = torch.randint(0, num_classes, (2, 32, 64))
    nn.functional.cross_entropy(logits, target).backward()
    _check_gradients(params, entry.name)

    with torch.no_grad():
        single = model.eval()(x[:1])
    assert single.shape == (1, num_classes, 32, 64)
    assert torch.isfinite(single).all()


def _check_scalar(loss: torch.Tensor, name: str) -> None:
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, f"{name}: not a scalar"
    assert loss.is_floating_point() and torch.isfinite(loss), f"{name}: {loss}"


@pytest.mark.parametrize("entry", _params("loss", "segmentation"))
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("case", ["random", "empty", "extreme"])
def test_segmentation_loss_contract(entry: Entry, k: int, case: str) -> None:
    torch.manual_seed(0)
    loss_fn = entry.build()
    assert isinstance(loss_fn, nn.Module)
    logits = torch.randn(2, k, 16, 16) * (1e4 if case == "extreme" else 3)
    logits.requires_grad_(True)
    if case == "empty":
        target = torch.zeros(2, 16, 16, dtype=torch.int64)
    else:
        target = torch.randint(0, max(k, 2), (2, 16, 16))
    loss = loss_fn(logits, target)
    _check_scalar(loss, entry.name)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("entry", _params("loss", "fusion"))
@pytest.mark.parametrize("case", ["random", "constant"])
def test_fusion_loss_contract(entry: Entry, case: str) -> None:
    torch.manual_seed(0)
    loss_fn = entry.build()
    assert isinstance(loss_fn, nn.Module)
    if case == "random":
        raw = torch.randn(2, 1, 32, 32, requires_grad=True)
        a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    else:  # flat images: zero variance in every SSIM window
        raw = torch.zeros(2, 1, 32, 32, requires_grad=True)
        a, b = torch.full((2, 1, 32, 32), 0.5), torch.zeros(2, 1, 32, 32)
    loss = loss_fn(torch.sigmoid(raw), a, b)
    _check_scalar(loss, entry.name)
    loss.backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


@pytest.mark.parametrize("entry", _params("region"))
def test_region_preset_contract(entry: Entry) -> None:
    """Every region preset builds valid, non-empty regions without parameters."""
    from benchbox.metrics.suite import check_regions, region_preset

    regions = region_preset(entry.name, REGISTRY)
    assert regions and check_regions(entry.build()) == regions
