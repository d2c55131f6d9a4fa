"""smp-* segmenters beyond the shared contract: encoders, input sizes, weights, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
import torchvision
from safetensors.torch import save_file

from benchbox.errors import ConfigError, UnknownSegmenterError, WeightsError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.backbones import SLOW_SMP

REGISTRY = create_registry()
ARCHS = sorted(smp.MODEL_ARCHITECTURES_MAPPING)
#: Encoders each architecture is built with: a timm one through ``tu-`` and smp's own
#: (the contract tests add the default resnet18). The default suite keeps tu-resnet18
#: for every architecture and efficientnet-b0 for the fast ones; the rest is slow.
ENCODERS = ("tu-resnet18", "efficientnet-b0", "mobilenet_v2", "tu-mobilenetv3_small_100")
#: Combinations smp itself does not support; they must fail with a clear ConfigError.
UNSUPPORTED = {("dpt", "efficientnet-b0"), ("dpt", "mobilenet_v2")}


def _matrix() -> list[object]:
    return [
        pytest.param(
            arch,
            encoder,
            id=f"{arch}-{encoder}",
            marks=[]
            if encoder == "tu-resnet18" or (encoder == "efficientnet-b0" and arch not in SLOW_SMP)
            else [pytest.mark.slow],
        )
        for arch in ARCHS
        for encoder in ENCODERS
    ]


def build(arch: str, **params: object) -> torch.nn.Module:
    return REGISTRY.get("segmenter", f"smp-{arch}").build(**params)


@pytest.mark.parametrize(("arch", "encoder"), _matrix())
def test_every_architecture_builds_with_several_encoders(arch: str, encoder: str) -> None:
    if (arch, encoder) in UNSUPPORTED:
        with pytest.raises(ConfigError, match=f"smp-{arch} with encoder '{encoder}': Only Timm"):
            build(arch, encoder=encoder)
        return
    torch.manual_seed(0)
    model = build(arch, in_channels=2, num_classes=3, encoder=encoder).eval()
    h, w = 32, 64
    with torch.no_grad():
        logits = model(torch.rand(1, 2, h, w))
    assert logits.shape == (1, 3, h, w)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("in_channels", [1, 2, 4])
def test_any_number_of_input_channels(in_channels: int) -> None:
    model = build("unet", in_channels=in_channels, num_classes=2).eval()
    assert model.encoder.conv1.in_channels == in_channels
    with torch.no_grad():
        assert model(torch.rand(1, in_channels, 32, 32)).shape == (1, 2, 32, 32)


def test_logits_not_probabilities_and_no_aux_head() -> None:
    model = build("fpn", num_classes=3).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 64, 64) * 4)
    assert isinstance(logits, torch.Tensor)
    assert logits.min() < 0 or logits.max() > 1
    names = {p.name for p in REGISTRY.get("segmenter", "smp-fpn").parameters}
    assert "activation" not in names and "aux_params" not in names
    with pytest.raises(ConfigError, match="has no parameter 'activation'"):
        build("fpn", activation="sigmoid")


def test_architecture_options_reach_smp() -> None:
    model = build("unet", decoder_channels=(32, 16, 8, 8, 4), encoder_depth=5)
    assert model.segmentation_head[0].in_channels == 4


# -- input sizes -----------------------------------------------------------------------
def test_sizes_not_divisible_by_the_stride_are_a_clear_error() -> None:
    model = build("fpn").eval()
    with pytest.raises(ConfigError, match="smp-fpn needs H and W divisible by 32, got 48x64"):
        model(torch.rand(1, 1, 48, 64))
    with torch.no_grad():  # Unet interpolates its skips and accepts any size
        assert build("unet").eval()(torch.rand(1, 1, 48, 40)).shape == (1, 2, 48, 40)


def test_wrong_channel_count_is_a_clear_error() -> None:
    model = build("unet", in_channels=2)
    with pytest.raises(
        ConfigError, match=r"smp-unet expects \(B, 2, H, W\) input, got \(1, 1, 32, 32\)"
    ):
        model(torch.rand(1, 1, 32, 32))


def test_pan_pads_small_inputs_to_its_minimum_and_crops_back() -> None:
    torch.manual_seed(0)
    model = build("pan", num_classes=2).eval()
    x = torch.rand(1, 1, 32, 64)
    with torch.no_grad():
        small = model(x)
        # The same computation by hand: pad (centred) to 128 x 128, run, crop.
        padded = torch.nn.functional.pad(x, (32, 32, 48, 48))
        for hook in (model._forward_pre_hooks, model._forward_hooks):
            hook.clear()
        reference = model(padded)[..., 48:80, 32:96]
    assert small.shape == (1, 2, 32, 64)
    torch.testing.assert_close(small, reference)


def test_pan_at_its_minimum_is_not_padded() -> None:
    model = build("pan").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 128, 160)).shape == (1, 2, 128, 160)


@pytest.mark.slow
def test_dpt_default_vit_takes_any_multiple_of_32() -> None:
    model = build("dpt").eval()
    assert model.encoder.model.__class__.__name__ == "VisionTransformer"
    with torch.no_grad():
        assert model(torch.rand(1, 1, 96, 32)).shape == (1, 2, 96, 32)
    with pytest.raises(ConfigError, match="smp-dpt needs H and W divisible by 32, got 48x32"):
        model(torch.rand(1, 1, 48, 32))


# -- bad input -------------------------------------------------------------------------
def test_unknown_architecture_suggests_close_names() -> None:
    with pytest.raises(UnknownSegmenterError, match="did you mean 'smp-unet'"):
        REGISTRY.get("segmenter", "smp-unet++")
    with pytest.raises(UnknownSegmenterError, match="'smp-deeplabv3'"):
        REGISTRY.get("segmenter", "smp-deeplab")


@pytest.mark.parametrize(
    ("encoder", "close"),
    [
        ("resnet81", "resnet18"),
        ("efficientnet_b0", "efficientnet-b0"),
        ("tu-resnet81", "resnet18"),
        ("tu-convnext_attto", "convnext_atto"),
    ],
)
def test_unknown_encoder_lists_close_names(encoder: str, close: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown (encoder|timm model) .*did you mean .*{close}"):
        build("unet", encoder=encoder)


def test_unknown_option_and_misplaced_encoder_params() -> None:
    with pytest.raises(
        ConfigError, match="no parameter 'decoder_chanels'; did you mean decoder_channels"
    ):
        build("unet", decoder_chanels=(8,))
    with pytest.raises(ConfigError, match="encoder_params applies to 'tu-' encoders only"):
        build("unet", encoder_params={"drop_rate": 0.1})
    with pytest.raises(ConfigError, match="in_channels must be a positive integer"):
        build("unet", in_channels=0)


def test_incompatible_encoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="smp-unetplusplus with encoder 'mit_b0'"):
        build("unetplusplus", encoder="mit_b0")


@pytest.mark.parametrize("value", ["imagenet", True])
def test_encoder_weights_are_never_a_name_to_download(value: object) -> None:
    with pytest.raises((WeightsError, ConfigError), match="never downloads"):
        build("unet", encoder_weights=value)
    with pytest.raises((WeightsError, ConfigError), match="never downloads"):
        build("unet", encoder="tu-resnet18", encoder_weights=value)


def test_weights_and_encoder_weights_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        build("unet", weights=str(tmp_path / "a"), encoder_weights=str(tmp_path / "b"))


# -- weights ---------------------------------------------------------------------------
@pytest.mark.parametrize("in_channels", [1, 2])
def test_timm_checkpoint_as_tu_encoder_weights(tmp_path: Path, in_channels: int) -> None:
    torch.manual_seed(1)
    source = timm.create_model("resnet18")  # a full classifier, 3 input channels
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    model = build("unet", in_channels=in_channels, encoder="tu-resnet18", encoder_weights=str(path))
    timm_model = model.encoder.model
    assert torch.equal(timm_model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert torch.equal(timm_model.bn1.running_var, source.bn1.running_var)
    expected = (
        source.conv1.weight.sum(1, keepdim=True)
        if in_channels == 1
        else source.conv1.weight[:, :2] * 3 / 2
    )
    torch.testing.assert_close(timm_model.conv1.weight, expected)


def test_torchvision_checkpoint_as_native_encoder_weights(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)  # includes fc.*, which the encoder lacks
    model = build("fpn", in_channels=1, encoder_weights=str(path))
    assert torch.equal(model.encoder.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    torch.testing.assert_close(model.encoder.conv1.weight, source.conv1.weight.sum(1, keepdim=True))


def test_encoder_weights_of_another_model_name_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224").state_dict(), str(path))
    # timm's features_only loading is lenient and only logs; it must not pass silently.
    with pytest.raises(WeightsError, match=r"missing from the file: conv1\.weight.*unexpected"):
        build("unet", encoder="tu-resnet18", encoder_weights=str(path))
    with pytest.raises(WeightsError, match=r"missing from the file: conv1\.weight"):
        build("unet", encoder="resnet18", encoder_weights=str(path))
    eff = tmp_path / "eff.safetensors"
    save_file(timm.create_model("efficientnet_b0").state_dict(), str(eff))
    with pytest.raises(WeightsError, match=r"bn1\.weight \(file \(32,\), model \(64,\)\)"):
        build("unet", encoder="tu-resnet18", encoder_weights=str(eff))


def test_whole_model_weights_round_trip_through_smp_save_pretrained(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = build("linknet", num_classes=3)
    trained.save_pretrained(str(tmp_path / "ckpt"))
    loaded = build("linknet", num_classes=3, weights=str(tmp_path / "ckpt" / "model.safetensors"))
    for (k, a), b in zip(trained.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(WeightsError, match=r"segmentation_head\.0\.\w+ \(file \(3"):
        build("linknet", num_classes=4, weights=str(tmp_path / "ckpt" / "model.safetensors"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("param", ["weights", "encoder_weights"])
def test_a_pickle_as_weights_is_refused_unexecuted(
    tmp_path: Path, param: str, pickle_trap: Any
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": pickle_trap(marker)}))
    with pytest.raises(WeightsError, match="not a tensor file"):
        build("unet", **{param: str(path)})
    assert not marker.exists()
