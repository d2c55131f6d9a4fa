"""U-Net and Attention U-Net (Oktay et al., 2018), one implementation with a gate flag.

The encoder has ``depth`` downsampling steps (2x2 max pooling); level ``l`` has
``width * 2**l`` channels, each level one :class:`ConvBlock` (two 3x3 conv-norm-ReLU).
The decoder upsamples bilinearly, concatenates the skip connection of the same level and
applies a :class:`ConvBlock`. With ``attention=True`` every skip connection first passes
through an additive :class:`AttentionGate` driven by the decoder's coarser feature map,
the gating signal; that is the only difference between ``attunet`` and ``unet``.

Reference: O. Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas",
MIDL 2018, arXiv:1804.03999.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance", "group", "none")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A normalisation layer over ``channels`` feature maps.

    Args:
        norm: ``"batch"`` (BatchNorm), ``"instance"`` (InstanceNorm with affine
            parameters), ``"group"`` (GroupNorm, 8 groups or fewer) or ``"none"``.
        channels: the number of feature maps.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU; keeps H and W."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        bias = norm == "none"  # a following norm layer makes a conv bias redundant
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad ``(B, C, H, W)`` on the bottom/right to multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` to crop back to.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class AttentionGate(nn.Module):
    """Additive attention gate of Oktay et al. (2018) on one skip connection.

    ``q = relu(W_x x + W_g g)``, ``psi = sigmoid(conv1x1(q))``, resampled (bilinear) to
    the resolution of ``x``, and the output is ``x * psi``. As in the paper, ``W_x`` is
    a 2x2 convolution with stride 2 so that ``x`` meets the gating signal ``g`` at its
    coarser resolution, and ``W_g`` a 1x1 convolution.

    Args:
        x_channels: channels of the skip connection ``x``.
        g_channels: channels of the gating signal ``g``.
        inter_channels: channels of the intermediate space; ``x_channels // 2`` by
            default (as in the paper).

    Shapes: ``x (B, x_channels, H, W)`` and ``g (B, g_channels, H/2, W/2)`` (any size;
    ``g``'s projection is resampled to ``W_x x``'s if they differ) ->
    ``(x * psi, psi)`` with ``psi (B, 1, H, W)`` in ``[0, 1]``.
    """

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(1, x_channels // 2)
        self.w_x = nn.Conv2d(x_channels, inter, kernel_size=2, stride=2, bias=False)
        self.w_g = nn.Conv2d(g_channels, inter, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(inter, 1, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.w_x(x)
        phi = self.w_g(g)
        if phi.shape[-2:] != theta.shape[-2:]:
            phi = F.interpolate(phi, size=theta.shape[-2:], mode="bilinear", align_corners=False)
        psi = torch.sigmoid(self.psi(F.relu(theta + phi)))
        psi = F.interpolate(psi, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * psi, psi


class UNet(nn.Module):
    """U-Net, optionally with attention-gated skip connections (Attention U-Net).

    Args:
        in_channels: channels of the input image.
        num_classes: output channels ``K`` (logits), background included.
        width: channels of the first level; level ``l`` has ``width * 2**l``.
        depth: number of 2x downsampling steps, 1 to 5.
        attention: gate every skip connection with an :class:`AttentionGate`.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.

    Shapes: ``float32 (B, in_channels, H, W)`` -> logits ``(B, num_classes, H, W)``,
    unnormalised. Any ``H`` and ``W`` work: inputs whose sides are not multiples of
    ``2**depth`` are replicate-padded and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: int = 16,
        depth: int = 4,
        attention: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be between 1 and 5, got {depth}")
        if width < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"width, in_channels and num_classes must be positive, got {width}, "
                f"{in_channels} and {num_classes}"
            )
        norm_layer(norm, 8)  # validate before building anything
        self.depth = depth
        self.attention = attention
        chans = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels, chans[0], norm)]
            + [ConvBlock(chans[lv - 1], chans[lv], norm) for lv in range(1, depth + 1)]
        )
        self.decoder = nn.ModuleList(
            [ConvBlock(chans[lv] + chans[lv + 1], chans[lv], norm) for lv in range(depth)]
        )
        self.gates = nn.ModuleList(
            [AttentionGate(chans[lv], chans[lv + 1]) for lv in range(depth)] if attention else []
        )
        self.head = nn.Conv2d(chans[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        d = skips.pop()
        for level in reversed(range(self.depth)):
            skip = skips[level]
            if self.attention:
                skip, _ = self.gates[level](skip, d)
            d = F.interpolate(d, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            d = self.decoder[level](torch.cat([skip, d], dim=1))
        return self.head(d)[..., :h, :w]


def attunet(
    in_channels: int,
    num_classes: int,
    width: int = 16,
    depth: int = 4,
    norm: str = "batch",
) -> UNet:
    """Attention U-Net (Oktay et al., 2018): U-Net with additive attention-gated skips.

    Args:
        in_channels: channels of the input, ``(B, in_channels, H, W)`` float32.
        num_classes: logit channels ``K``, background included.
        width: channels of the first level (doubled at each of the ``depth`` levels).
        depth: number of 2x downsampling steps, 1 to 5.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.

    Returns:
        A module mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``.
    """
    return UNet(in_channels, num_classes, width, depth, attention=True, norm=norm)


def unet(
    in_channels: int,
    num_classes: int,
    width: int = 16,
    depth: int = 4,
    norm: str = "batch",
) -> UNet:
    """U-Net (Ronneberger et al., 2015) with bilinear upsampling; attunet without gates.

    Args:
        in_channels: channels of the input, ``(B, in_channels, H, W)`` float32.
        num_classes: logit channels ``K``, background included.
        width: channels of the first level (doubled at each of the ``depth`` levels).
        depth: number of 2x downsampling steps, 1 to 5.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.

    Returns:
        A module mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``.
    """
    return UNet(in_channels, num_classes, width, depth, attention=False, norm=norm)
