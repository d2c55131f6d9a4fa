"""timm-dual beyond the shared contract: sizes, sharing, fusion modes, weights, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from benchbox.errors import ConfigError, WeightsError
from benchbox.metrics.flops import count_parameters
from benchbox_plugins.backbones import make_timm_dual


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return make_timm_dual().eval()


@pytest.mark.parametrize("size", [(32, 48), (64, 64), (21, 35), (16, 16)])
def test_full_resolution_output_in_unit_range_for_any_size(
    model: torch.nn.Module, size: tuple[int, int]
) -> None:
    a, b = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    with torch.no_grad():
        fused = model(a, b)
    assert fused.shape == (2, 1, *size)
    assert fused.min() >= 0 and fused.max() <= 1


def test_both_sources_reach_every_output_pixel_region(model: torch.nn.Module) -> None:
    a = torch.rand(1, 1, 32, 32, requires_grad=True)
    b = torch.rand(1, 1, 32, 32, requires_grad=True)
    model(a, b)[0, 0, 8, 24].backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    # the full-resolution refinement sees the sources themselves
    assert a.grad[0, 0, 7:10, 23:26].abs().sum() > 0


def test_separate_or_shared_encoders() -> None:
    separate = make_timm_dual()
    shared = make_timm_dual(shared=True)
    assert separate.encoder_a is not separate.encoder_b
    assert {id(p) for p in separate.encoder_a.parameters()}.isdisjoint(
        id(p) for p in separate.encoder_b.parameters()
    )
    assert shared.encoder_a is shared.encoder_b
    encoder = count_parameters(shared.encoder_a)
    assert count_parameters(separate) - count_parameters(shared) == encoder
    assert encoder == count_parameters(
        timm.create_model("resnet18", features_only=True, in_chans=1)
    )


@pytest.mark.parametrize("fuse", ["concat", "mean", "max"])
def test_fusion_modes(fuse: str) -> None:
    net = make_timm_dual(fuse=fuse, decoder_channels=8).eval()
    first = net.fuse[0].proj[0]
    assert first.in_channels == (128 if fuse == "concat" else 64)
    assert first.out_channels == 8
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_another_backbone_and_backbone_params() -> None:
    net = make_timm_dual("mobilenetv3_small_100", backbone_params={"drop_rate": 0.1}).eval()
    channels = net.encoder_a.feature_info.channels()
    assert [f.proj[0].in_channels for f in net.fuse] == [2 * c for c in channels]
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 32), torch.rand(1, 1, 64, 32)).shape == (1, 1, 64, 32)


def test_inputs_are_normalised_with_the_backbones_grey_statistics(model: torch.nn.Module) -> None:
    assert model.mean == pytest.approx((0.485 + 0.456 + 0.406) / 3)
    assert model.std == pytest.approx((0.229 + 0.224 + 0.225) / 3)


# -- bad input -------------------------------------------------------------------------
def test_unknown_backbone_lists_close_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown timm model 'resnet81'; did you mean resnet18"):
        make_timm_dual("resnet81")
    with pytest.raises(ConfigError, match=r"did you mean .*efficientnet_b0"):
        make_timm_dual("efficientnet_b00")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"fuse": "sum"}, "fuse must be one of concat, mean, max"),
        ({"decoder_channels": 0}, "decoder_channels must be >= 1"),
        ({"backbone_params": ["x"]}, "backbone_params must be a dict"),
        ({"backbone_params": {"no_such_option": 1}}, "cannot be a feature extractor"),
        ({"weights": True}, "never downloads"),
    ],
)
def test_bad_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_timm_dual(**params)  # type: ignore[arg-type]


# -- weights ---------------------------------------------------------------------------
def test_timm_checkpoint_fills_both_encoders(tmp_path: Path) -> None:
    torch.manual_seed(4)
    source = timm.create_model("resnet18")
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    net = make_timm_dual(weights=str(path))
    for encoder in (net.encoder_a, net.encoder_b):
        assert torch.equal(encoder.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
        torch.testing.assert_close(encoder.conv1.weight, source.conv1.weight.sum(1, keepdim=True))


def test_weights_of_another_model_name_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224").state_dict(), str(path))
    with pytest.raises(
        WeightsError,
        match=r"timm-dual backbone 'resnet18': weights file .*vit\.safetensors does not match: "
        r"keys 100 missing from the file: conv1\.weight, .*\(95 more\); 152 unexpected",
    ):
        make_timm_dual(weights=str(path))


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist; benchbox never downloads"):
        make_timm_dual(weights=str(tmp_path / "resnet18.pth"))
