"""What the backbones plugin registers, and that registering it stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import segmentation_models_pytorch as smp
import torch

from benchbox.hooks.manager import create_registry
from benchbox.metrics.flops import count_flops
from benchbox_plugins.backbones import SLOW_SMP, make_timm_dual, smp_architectures
from benchbox_plugins.backbones.timm_dual import TimmDualFusion

REGISTRY = create_registry()


def test_every_installed_smp_architecture_is_discovered() -> None:
    discovered = smp_architectures()
    assert set(discovered) == set(smp.MODEL_ARCHITECTURES_MAPPING)
    for arch, class_name in discovered.items():
        assert smp.MODEL_ARCHITECTURES_MAPPING[arch].__name__ == class_name


def test_registered_names() -> None:
    names = {e.name for e in REGISTRY.list("segmenter", "smp-*")}
    assert names == {f"smp-{arch}" for arch in smp.MODEL_ARCHITECTURES_MAPPING}
    assert {"smp-unet", "smp-unetplusplus", "smp-deeplabv3plus", "smp-segformer"} <= names
    entry = REGISTRY.get("fusion", "timm-dual")
    assert entry.provider.plugin.endswith(":backbones")
    assert not REGISTRY.load_errors


@pytest.mark.integration
def test_registration_imports_neither_torch_nor_timm_nor_smp() -> None:
    code = (
        "import sys\n"
        "import benchbox_plugins.backbones as b\n"
        "from benchbox.hooks.registry import Registry, Provider\n"
        "r = Registry()\n"
        "def into(kind):\n"
        "    def register(name, factory, *, description=None, **info):\n"
        "        r.add(kind, name, factory, Provider('t'), description, info)\n"
        "    return register\n"
        "b.register_segmenters(into('segmenter'))\n"
        "b.register_fusions(into('fusion'))\n"
        "assert len(r.list('segmenter')) >= 10\n"
        "heavy = {'torch', 'timm', 'segmentation_models_pytorch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_signature_lists_each_architectures_own_options() -> None:
    unet = {p.name: p for p in REGISTRY.get("segmenter", "smp-unet").parameters}
    assert list(unet)[:6] == [
        "in_channels",
        "num_classes",
        "encoder",
        "encoder_weights",
        "weights",
        "encoder_params",
    ]
    assert unet["encoder"].default == "resnet18"
    assert unet["encoder_weights"].default is None and unet["weights"].default is None
    assert unet["decoder_channels"].default == (256, 128, 64, 32, 16)
    assert not {"activation", "aux_params", "encoder_name", "classes"} & set(unet)
    pan = {p.name: p.default for p in REGISTRY.get("segmenter", "smp-pan").parameters}
    assert pan["encoder_output_stride"] == 16 and "decoder_channels" in pan
    dpt = {p.name: p.default for p in REGISTRY.get("segmenter", "smp-dpt").parameters}
    assert dpt["encoder"].startswith("tu-vit")
    assert dpt["encoder_params"] == {"dynamic_img_size": True}


def test_timm_dual_factory_mirrors_the_class() -> None:
    lazy = inspect.signature(make_timm_dual).parameters
    real = inspect.signature(TimmDualFusion.__init__).parameters
    assert list(lazy) == [p for p in real if p != "self"]
    assert all(lazy[p].default == real[p].default for p in lazy)
    assert [str(p) for p in REGISTRY.get("fusion", "timm-dual").parameters] == [
        "backbone='resnet18'",
        "shared=False",
        "fuse='concat'",
        "decoder_channels=32",
        "weights=None",
        "backbone_params=None",
    ]


def test_a_fast_representative_stays_in_the_default_suite() -> None:
    assert not REGISTRY.get("segmenter", "smp-unet").info["slow"]
    assert not REGISTRY.get("fusion", "timm-dual").info["slow"]
    assert {REGISTRY.get("segmenter", f"smp-{a}").info["slow"] for a in SLOW_SMP} == {True}


@pytest.mark.slow
def test_slow_marks_follow_the_flop_rule() -> None:
    # The rule behind SLOW_SMP: over 1 GFLOP for the contract tests' forward pass.
    x = torch.rand(2, 1, 32, 64)
    heavy = set()
    for entry in REGISTRY.list("segmenter", "smp-*"):
        if count_flops(entry.build(), x) > 1e9:
            heavy.add(entry.name.removeprefix("smp-"))
    assert heavy == set(SLOW_SMP)
