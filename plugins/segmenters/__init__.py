"""Built-in segmenters: `attunet` (Attention U-Net, Oktay et al., 2018) and `unet`."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_segmenters(register: Register) -> None:
    from benchbox_plugins.segmenters.attunet import attunet, unet

    register("attunet", attunet)
    register("unet", unet)
