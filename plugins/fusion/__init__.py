"""Built-in fusion model `dual`, the seed article's dual-encoder network."""

from __future__ import annotations

from benchbox import hookimpl
from benchbox.hookspecs import Register


@hookimpl
def register_fusions(register: Register) -> None:
    from benchbox_plugins.fusion.dual import DualEncoderFusion

    register(
        "dual",
        DualEncoderFusion,
        description="Dual-encoder CNN: one encoder per modality, 1x1 fusion, U-Net decoder",
    )
