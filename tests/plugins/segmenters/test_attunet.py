"""Attention U-Net and U-Net beyond the shared contract (tests/plugins/test_contracts.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.segmenters.attunet import AttentionGate, UNet, attunet, unet


def _gate(x_channels: int = 4, g_channels: int = 8) -> AttentionGate:
    torch.manual_seed(0)
    return AttentionGate(x_channels, g_channels)


def test_gate_follows_oktay() -> None:
    # psi = sigmoid(conv1x1(relu(W_x x + W_g g))), resampled to x's resolution; out = x * psi
    gate = _gate()
    x, g = torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)
    out, psi = gate(x, g)
    assert psi.shape == (2, 1, 16, 16) and psi.min() >= 0 and psi.max() <= 1
    torch.testing.assert_close(out, x * psi)
    q = F.relu(F.conv2d(x, gate.w_x.weight, stride=2) + F.conv2d(g, gate.w_g.weight, gate.w_g.bias))
    coarse = torch.sigmoid(
        (q * gate.psi.weight.view(1, -1, 1, 1)).sum(1, keepdim=True) + gate.psi.bias
    )
    torch.testing.assert_close(psi, F.interpolate(coarse, size=(16, 16), mode="bilinear"))


def test_gate_is_driven_by_the_gating_signal() -> None:
    gate = _gate()
    x = torch.randn(1, 4, 16, 16)
    _, psi1 = gate(x, torch.randn(1, 8, 8, 8))
    _, psi2 = gate(x, torch.randn(1, 8, 8, 8))
    assert (psi1 - psi2).abs().max() > 1e-3


@pytest.mark.parametrize(("bias", "factor"), [(0.0, 0.5), (-60.0, 0.0), (60.0, 1.0)])
def test_gate_hand_cases(bias: float, factor: float) -> None:
    gate = _gate()
    with torch.no_grad():
        gate.psi.weight.zero_()
        gate.psi.bias.fill_(bias)
    x = torch.randn(1, 4, 16, 16)
    out, _ = gate(x, torch.randn(1, 8, 8, 8))
    torch.testing.assert_close(out, x * factor)


def test_gates_are_the_only_difference() -> None:
    # With every gate wide open (psi == 1) attunet computes exactly what unet computes.
    torch.manual_seed(0)
    plain, gated = unet(2, 3, width=4, depth=3), attunet(2, 3, width=4, depth=3)
    assert type(plain) is type(gated) is UNet
    assert len(plain.gates) == 0 and len(gated.gates) == 3
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all(k.startswith("gates.") for k in missing)
    with torch.no_grad():
        for gate in gated.gates:
            gate.psi.weight.zero_()
            gate.psi.bias.fill_(60.0)
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gated.eval()(x), plain.eval()(x))
        for gate in gated.gates:
            gate.psi.bias.fill_(0.0)
        assert (gated(x) - plain(x)).abs().max() > 1e-4


@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("attention", [False, True])
def test_any_size_divisible_by_32(depth: int, attention: bool) -> None:
    model = UNet(1, 2, width=4, depth=depth, attention=attention).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 32, 96)).shape == (1, 2, 32, 96)


def test_other_sizes_are_padded_and_cropped_back() -> None:
    model = attunet(1, 2, width=4, depth=4).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 40, 57)).shape == (2, 2, 40, 57)


def test_width_and_depth_shape_the_network() -> None:
    model = attunet(3, 5, width=8, depth=2)
    assert model.encoder[0][0].in_channels == 3
    assert model.encoder[-1][0].out_channels == 8 * 2**2
    assert model.head.out_channels == 5
    assert len(model.encoder) == 3 and len(model.decoder) == 2 and len(model.gates) == 2


def test_eval_mode_is_independent_of_the_batch() -> None:
    torch.manual_seed(0)
    model = attunet(1, 2, width=4, depth=3)
    x = torch.rand(4, 1, 32, 32)
    model.train()(x)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([model(x[i : i + 1]) for i in range(4)]))


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_norm_options(norm: str) -> None:
    assert unet(1, 2, width=4, depth=2, norm=norm)(torch.rand(2, 1, 32, 32)).shape == (2, 2, 32, 32)


@pytest.mark.parametrize("name", ["attunet", "unet"])
@pytest.mark.parametrize("params", [{"depth": 0}, {"depth": 6}, {"width": 0}, {"norm": "layer"}])
def test_bad_parameters_are_config_errors(name: str, params: dict[str, object]) -> None:
    entry = create_registry().get("segmenter", name)
    with pytest.raises(ConfigError, match=name):
        entry.build(in_channels=1, num_classes=2, **params)


def test_unknown_parameter_is_a_config_error() -> None:
    entry = create_registry().get("segmenter", "attunet")
    with pytest.raises(ConfigError, match="attention"):
        entry.build(in_channels=1, num_classes=2, attention=False)
