"""The dual-encoder fusion model beyond the shared contract (tests/plugins/test_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.fusion.dual import DualEncoderFusion


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_any_size_divisible_by_16_at_every_depth(depth: int) -> None:
    model = DualEncoderFusion(width=4, depth=depth).eval()
    a = torch.rand(1, 1, 16, 48)
    with torch.no_grad():
        fused = model(a, a)
    assert fused.shape == (1, 1, 16, 48)


def test_other_sizes_are_padded_and_cropped_back() -> None:
    model = DualEncoderFusion(width=4, depth=3).eval()
    with torch.no_grad():
        fused = model(torch.rand(2, 1, 21, 35), torch.rand(2, 1, 21, 35))
    assert fused.shape == (2, 1, 21, 35)
    assert fused.min() >= 0 and fused.max() <= 1


def test_width_and_depth_shape_the_network() -> None:
    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(DualEncoderFusion(8, 2)) < count(DualEncoderFusion(16, 2))
    assert count(DualEncoderFusion(8, 2)) < count(DualEncoderFusion(8, 3))
    model = DualEncoderFusion(width=8, depth=2)
    assert model.encoder_a.blocks[-1][0].out_channels == 8 * 2**2
    assert len(model.fuse) == 3 and len(model.decoder) == 2


def test_one_encoder_per_modality_and_both_reach_the_output() -> None:
    torch.manual_seed(0)
    model = DualEncoderFusion(width=4, depth=2, residual=False).eval()
    ids_a = {id(p) for p in model.encoder_a.parameters()}
    assert ids_a.isdisjoint(id(p) for p in model.encoder_b.parameters())
    a = torch.rand(1, 1, 32, 32, requires_grad=True)
    b = torch.rand(1, 1, 32, 32, requires_grad=True)
    model(a, b)[0, 0, 16, 16].backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_full_resolution_path_keeps_detail() -> None:
    # The finest fused skip feeds the last decoder block: an output pixel depends most
    # strongly on the input pixels next to it, not only on a coarse neighbourhood.
    torch.manual_seed(0)
    model = DualEncoderFusion(width=8, depth=3, norm="none", residual=False).eval()
    a = torch.rand(1, 1, 32, 32, requires_grad=True)
    model(a, torch.rand(1, 1, 32, 32))[0, 0, 15:17, 15:17].sum().backward()
    assert a.grad is not None
    grad = a.grad[0, 0].abs()
    assert grad[13:19, 13:19].sum() > 50 * grad[:8, :8].sum()


def test_eval_mode_is_independent_of_the_batch() -> None:
    torch.manual_seed(0)
    model = DualEncoderFusion(width=4, depth=2)
    a, b = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    model.train()(a, b)  # move the running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        whole = model(a, b)
        parts = torch.cat([model(a[i : i + 1], b[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, parts)


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_norm_options(norm: str) -> None:
    fused = DualEncoderFusion(width=4, depth=2, norm=norm)(
        torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    )
    assert fused.shape == (2, 1, 16, 16)


@pytest.mark.parametrize("params", [{"depth": 0}, {"depth": 5}, {"width": 0}, {"norm": "layer"}])
def test_bad_parameters_are_config_errors(params: dict[str, object]) -> None:
    entry = create_registry().get("fusion", "dual")
    with pytest.raises(ConfigError, match="dual"):
        entry.build(**params)


def test_mismatched_sources_are_rejected() -> None:
    with pytest.raises(ValueError, match="one shape"):
        DualEncoderFusion(width=4, depth=1)(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 32))


def test_residual_output_starts_at_the_average_and_learns_a_correction() -> None:
    torch.manual_seed(0)
    model = DualEncoderFusion(width=4, depth=2)
    a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    expected = (0.5 * (a + b)).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(model.eval()(a, b), expected, atol=1e-6)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # the zero-initialised head moves first, then the encoders learn
        optimizer.zero_grad()
        ((model(a, b) - a) ** 2).mean().backward()
        optimizer.step()
    grad = next(model.encoder_b.parameters()).grad
    assert grad is not None and grad.abs().sum() > 0
    assert (model.eval()(a, b) - expected).abs().max() > 1e-3


@pytest.mark.parametrize("base", ["mean", "max"])
def test_untrained_residual_model_is_its_base(base: str) -> None:
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 32, 32) * 0.9 + 0.05, torch.rand(2, 1, 32, 32) * 0.9 + 0.05
    with torch.no_grad():
        fused = DualEncoderFusion(width=4, depth=2, base=base).eval()(a, b)
    expected = (a + b) / 2 if base == "mean" else torch.maximum(a, b)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=0)


def test_unknown_base_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base must be one of mean, max, not 'min'"):
        create_registry().get("fusion", "dual").build(base="min")
