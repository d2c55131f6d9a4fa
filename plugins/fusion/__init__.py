"""Built-in fusion models: `dual`, the seed article's dual-encoder network, and `concat`,
its early-fusion control (one encoder on the concatenated sources, same size)."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_fusions(register: Register) -> None:
    from benchbox_plugins.fusion.concat import ConcatFusion
    from benchbox_plugins.fusion.dual import DualEncoderFusion

    register(
        "dual",
        DualEncoderFusion,
        description="Dual-encoder CNN: one encoder per modality, 1x1 fusion, U-Net decoder",
    )
    register(
        "concat",
        ConcatFusion,
        description="Early fusion: sources concatenated into one encoder, U-Net decoder "
        "(width 21: 0.84M parameters, as dual's 0.83M)",
    )
