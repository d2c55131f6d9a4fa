"""Built-in backbones plugin: segmentation-models-pytorch segmenters and ``timm-dual``.

Registration is cheap: it imports neither torch, timm nor smp (importing smp costs
about 1.5 s on top of torch). The smp architectures are discovered by reading the
installed smp's ``__init__.py`` (the classes it imports from its ``decoders``
package), so a newer smp adds ``smp-<arch>`` names without a change here; the models
are only imported and built when asked for.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbox import Register, hookimpl

if TYPE_CHECKING:
    from benchbox_plugins.backbones.timm_dual import TimmDualFusion

#: Architectures marked ``slow`` for the contract tests: with default options their
#: forward pass on the tests' batch (2 x 1 x 32 x 64) exceeds 1 GFLOP, which puts
#: build + forward + backward over about a second on a 2-core CPU. FLOPs rather than
#: seconds because they do not depend on the machine's load (a slow test checks it).
SLOW_SMP = frozenset({"deeplabv3", "dpt", "pan", "unetplusplus", "upernet"})


@functools.lru_cache(maxsize=1)
def smp_architectures() -> dict[str, str]:
    """``{arch id: class name}`` of every architecture the installed smp exports.

    Read from the source of ``segmentation_models_pytorch/__init__.py`` (``from
    .decoders.unet import Unet``...) without importing it; falls back to importing smp
    and reading ``MODEL_ARCHITECTURES_MAPPING`` if that finds nothing.
    """
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None or spec.origin is None:
        return {}
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    names = [
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        and node.level == 1
        and (node.module or "").split(".")[0] == "decoders"
        for alias in node.names
        if alias.name[:1].isupper()
    ]
    if not names:
        import segmentation_models_pytorch as smp

        return {k: v.__name__ for k, v in smp.MODEL_ARCHITECTURES_MAPPING.items()}
    return {name.lower(): name for name in names}


def make_timm_dual(
    backbone: str = "resnet18",
    *,
    shared: bool = False,
    fuse: str = "concat",
    decoder_channels: int = 32,
    weights: str | os.PathLike[str] | None = None,
    backbone_params: Mapping[str, Any] | None = None,
) -> TimmDualFusion:
    """Dual-encoder fusion on any timm backbone (features_only), U-Net decoder, full size.

    See :class:`benchbox_plugins.backbones.timm_dual.TimmDualFusion` for the parameters;
    this lazy factory keeps torch and timm out of plugin registration.
    """
    from benchbox_plugins.backbones.timm_dual import TimmDualFusion

    return TimmDualFusion(
        backbone,
        shared=shared,
        fuse=fuse,
        decoder_channels=decoder_channels,
        weights=weights,
        backbone_params=backbone_params,
    )


@hookimpl
def register_segmenters(register: Register) -> None:
    from benchbox_plugins.backbones.smp import SmpSegmenter

    for arch, class_name in smp_architectures().items():
        factory = SmpSegmenter(arch, class_name)
        register(factory.name, factory, description=factory.__doc__, slow=arch in SLOW_SMP)


@hookimpl
def register_fusions(register: Register) -> None:
    if importlib.util.find_spec("timm") is None:
        return
    register("timm-dual", make_timm_dual, slow=False)
