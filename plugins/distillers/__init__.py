"""Built-in distillers (``register_distillers``): ``logits`` and ``cwd`` for
segmentation, ``fused`` for fusion."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_distillers(register: Register) -> None:
    from benchbox_plugins.distillers.fused import FusedDistiller
    from benchbox_plugins.distillers.logits import ChannelWiseDistiller, LogitsDistiller

    register(
        "logits",
        LogitsDistiller,
        dims=(2, 3),
        task="segmentation",
        description="T^2 KL of temperature-softened class probabilities (Hinton et al., 2015)",
    )
    register(
        "cwd",
        ChannelWiseDistiller,
        dims=(2, 3),
        task="segmentation",
        description="T^2 KL of each class map softened over the pixels (Shu et al., 2021)",
    )
    register(
        "fused",
        FusedDistiller,
        dims=(2, 3),
        task="fusion",
        description="L1 or 1 - SSIM between the student's and the teacher's fused images",
    )
