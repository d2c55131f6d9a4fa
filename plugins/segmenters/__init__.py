"""Built-in segmenters: `attunet` (Attention U-Net, Oktay et al., 2018) and `unet`, in 2D
and 3D; and MONAI's networks as `monai-<arch>` (:mod:`.monai_nets`), 2D or 3D."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_segmenters(register: Register) -> None:
    from benchbox_plugins.segmenters.attunet import attunet, unet
    from benchbox_plugins.segmenters.monai_nets import (
        ARCHS,
        SLOW,
        MonaiSegmenter,
        input_multiple,
        monai_dynunet,
    )

    register("attunet", attunet, dims=(2, 3))
    register("unet", unet, dims=(2, 3))
    for arch in ARCHS:
        extra: dict[str, object] = {"slow": True} if arch in SLOW else {}
        multiple = input_multiple(arch, ARCHS[arch][1], 3) or 16
        if multiple > 16:  # SwinUNETR: 32 (the contract sizes its 3D inputs by it)
            extra["multiple"] = multiple
        register(f"monai-{arch}", MonaiSegmenter(arch), dims=(2, 3), **extra)
    register(
        "monai-dynunet",
        monai_dynunet,
        description="MONAI DynUNet planned as nnU-Net plans it (kernels, strides from the patch)",
        dims=(2, 3),
        slow="dynunet" in SLOW,
    )
