"""Built-in losses: Dice, focal and hybrid for segmentation; SSIM, fusion and maxgrad for
fusion."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_losses(register: Register) -> None:
    from benchbox_plugins.losses.fusion import FusionLoss, SSIMLoss
    from benchbox_plugins.losses.maxgrad import MaxGradLoss
    from benchbox_plugins.losses.segmentation import DiceLoss, FocalLoss, HybridLoss

    # The segmentation losses take 2D and 3D logits; the fusion losses see 2D images
    # (a 3D run hands them its volumes slice by slice: benchbox.engine.dims).
    register("dice", DiceLoss, task="segmentation", description="Soft Dice loss", dims=(2, 3))
    register(
        "focal",
        FocalLoss,
        task="segmentation",
        description="Focal loss (Lin et al., 2017)",
        dims=(2, 3),
    )
    register(
        "hybrid",
        HybridLoss,
        task="segmentation",
        description="alpha * Dice + (1 - alpha) * focal",
        dims=(2, 3),
    )
    register("ssim", SSIMLoss, task="fusion", description="1 - SSIM, averaged over the sources")
    register(
        "fusion",
        FusionLoss,
        task="fusion",
        description="0.7 * (2 - SSIM(F,A) - SSIM(F,B)) + 0.3 * max-gradient L1",
    )
    register(
        "maxgrad",
        MaxGradLoss,
        task="fusion",
        description="w_i * L1(F, max(A,B) or saliency target) + w_g * Sobel max-gradient L1 "
        "+ w_s * (1 - SSIM)",
    )
