"""The early-fusion ``concat`` model beyond the shared contract (test_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.fusion.concat import ConcatFusion, count_parameters
from benchbox_plugins.fusion.dual import DualEncoderFusion


def _block(c_in: int, c: int) -> int:
    """A ConvBlock ``c_in -> c``: two bias-free 3x3 convolutions and two batch norms."""
    return 9 * c_in * c + 9 * c * c + 4 * c


def _encoder(chans: list[int], in_channels: int) -> int:
    return _block(in_channels, chans[0]) + sum(
        _block(chans[lv - 1], chans[lv]) for lv in range(1, len(chans))
    )


def _decoder_and_head(chans: list[int]) -> int:
    decoder = sum(_block(chans[lv] + chans[lv + 1], chans[lv]) for lv in range(len(chans) - 1))
    return decoder + chans[0] + 1  # the 1x1 head: weights + bias


def test_parameter_counts_match_the_docstring_and_a_hand_count() -> None:
    dual, concat = count_parameters(DualEncoderFusion()), count_parameters(ConcatFusion())
    c21, c16 = [21, 42, 84, 168], [16, 32, 64, 128]
    assert concat == _encoder(c21, 2) + _decoder_and_head(c21) == 839_707
    fuse = sum(2 * c * c + 2 * c for c in c16)  # 1x1 conv 2c -> c (no bias) + batch norm
    assert dual == 2 * _encoder(c16, 1) + fuse + _decoder_and_head(c16) == 825_425
    # "of comparable size": within 15 % (it is 1.7 %); at dual's width 16 it is 59 %
    assert abs(concat / dual - 1) < 0.15
    assert count_parameters(ConcatFusion(width=16)) / dual < 0.6


def test_one_encoder_sees_both_sources() -> None:
    model = ConcatFusion(width=4, depth=2)
    assert model.encoder.blocks[0][0].in_channels == 2
    assert not hasattr(model, "encoder_b")
    torch.manual_seed(0)
    model = ConcatFusion(width=4, depth=2, residual=False).eval()
    a = torch.rand(1, 1, 32, 32, requires_grad=True)
    b = torch.rand(1, 1, 32, 32, requires_grad=True)
    model(a, b)[0, 0, 16, 16].backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert b.grad is not None and b.grad.abs().sum() > 0


@pytest.mark.parametrize("base", ["mean", "max"])
def test_untrained_residual_model_is_its_base(base: str) -> None:
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 32, 32) * 0.9 + 0.05, torch.rand(2, 1, 32, 32) * 0.9 + 0.05
    with torch.no_grad():
        fused = ConcatFusion(width=4, base=base).eval()(a, b)
    expected = (a + b) / 2 if base == "mean" else torch.maximum(a, b)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=0)


def test_odd_sizes_are_padded_and_cropped_back() -> None:
    model = ConcatFusion(width=4, depth=3).eval()
    with torch.no_grad():
        fused = model(torch.rand(2, 1, 21, 35), torch.rand(2, 1, 21, 35))
    assert fused.shape == (2, 1, 21, 35)
    assert fused.min() >= 0 and fused.max() <= 1


def test_mismatched_sources_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ConcatFusion(width=4)(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 32))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"norm": "layer"}, "norm"),
        ({"base": "min"}, "base must be one of mean, max"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict[str, object], match: str) -> None:
    entry = create_registry().get("fusion", "concat")
    with pytest.raises(ConfigError, match=match):
        entry.build(**params)
