"""U-Net and Attention U-Net (Oktay et al., 2018), one implementation with a gate flag.

The encoder has ``depth`` downsampling steps (2x2 max pooling); level ``l`` has
``width * 2**l`` channels, each level one :class:`ConvBlock` (two 3x3 conv-norm-ReLU).
The decoder upsamples bilinearly, concatenates the skip connection of the same level and
applies a :class:`ConvBlock`. With ``attention=True`` every skip connection first passes
through an additive :class:`AttentionGate` driven by the decoder's coarser feature map,
the gating signal; that is the only difference between ``attunet`` and ``unet``.

Both come in 2D and 3D (``spatial_dims``): in 3D every 3x3 convolution, 2x2 pooling and
bilinear resampling becomes its 3x3x3, 2x2x2 and trilinear counterpart (the paper's own
Attention U-Net is 3D); nothing else changes.

Reference: O. Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas",
MIDL 2018, arXiv:1804.03999.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance", "group", "none")
#: The layers of each dimensionality: convolution, batch norm, instance norm, resampling.
_LAYERS: dict[int, tuple[type[nn.Module], type[nn.Module], type[nn.Module], str]] = {
    2: (nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d, "bilinear"),
    3: (nn.Conv3d, nn.BatchNorm3d, nn.InstanceNorm3d, "trilinear"),
}


def check_dims(spatial_dims: int) -> int:
    """Refuse a dimensionality other than 2 or 3 (a ValueError: a configuration error)."""
    if spatial_dims not in _LAYERS:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def conv(dims: int) -> Any:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return _LAYERS[dims][0]


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear (4D) or trilinear (5D) resampling of ``x`` to the spatial ``size``."""
    mode = _LAYERS[x.dim() - 2][3]
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 (4D) or 2x2x2 (5D) max pooling."""
    return F.max_pool2d(x, 2) if x.dim() == 4 else F.max_pool3d(x, 2)


def norm_layer(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """A normalisation layer over ``channels`` feature maps.

    Args:
        norm: ``"batch"`` (BatchNorm), ``"instance"`` (InstanceNorm with affine
            parameters), ``"group"`` (GroupNorm, 8 groups or fewer) or ``"none"``.
        channels: the number of feature maps.
        dims: 2 or 3, the feature maps' spatial dimensionality.
    """
    if norm == "batch":
        return _LAYERS[dims][1](channels)
    if norm == "instance":
        return _LAYERS[dims][2](channels, affine=True)
    if norm == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


class ConvBlock(nn.Sequential):
    """Two 3x3 (3x3x3) convolutions, each followed by normalisation and ReLU; keeps the
    spatial size."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", dims: int = 2
    ) -> None:
        bias = norm == "none"  # a following norm layer makes a conv bias redundant
        conv_nd = conv(dims)
        super().__init__(
            conv_nd(in_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels, dims),
            nn.ReLU(inplace=True),
            conv_nd(out_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels, dims),
            nn.ReLU(inplace=True),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Replicate-pad ``(B, C, H, W)`` (or ``(B, C, D, H, W)``) at the end of each spatial
    axis to multiples of ``multiple``.

    Returns the padded tensor and the original spatial size to crop back to.
    """
    # The sizes stay traced values (not ints), so an exported graph crops at any size.
    size = tuple(x.shape[2:])
    pads = [p for n in reversed(size) for p in (0, -n % multiple)]
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    return x, size


def crop_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The first ``size`` positions of each spatial axis of ``x`` (undoes
    :func:`pad_to_multiple`)."""
    return x[(..., *(slice(0, n) for n in size))]


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

    def __init__(
        self, x_channels: int, g_channels: int, inter_channels: int | None = None, dims: int = 2
    ):
        super().__init__()
        inter = inter_channels or max(1, x_channels // 2)
        conv_nd = conv(dims)
        self.w_x = conv_nd(x_channels, inter, kernel_size=2, stride=2, bias=False)
        self.w_g = conv_nd(g_channels, inter, kernel_size=1, bias=True)
        self.psi = conv_nd(inter, 1, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.w_x(x)
        phi = self.w_g(g)
        if phi.shape[2:] != theta.shape[2:]:
            phi = resize(phi, theta.shape[2:])
        psi = torch.sigmoid(self.psi(F.relu(theta + phi)))
        psi = resize(psi, x.shape[2:])
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
        spatial_dims: 2 (images) or 3 (volumes).

    Shapes: ``float32 (B, in_channels, H, W)`` -> logits ``(B, num_classes, H, W)``,
    unnormalised (in 3D ``(B, in_channels, D, H, W)`` -> ``(B, num_classes, D, H, W)``).
    Any size works: inputs whose sides are not multiples of ``2**depth`` are
    replicate-padded and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: int = 16,
        depth: int = 4,
        attention: bool = False,
        norm: str = "batch",
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        dims = check_dims(spatial_dims)
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
            [ConvBlock(in_channels, chans[0], norm, dims)]
            + [ConvBlock(chans[lv - 1], chans[lv], norm, dims) for lv in range(1, depth + 1)]
        )
        self.decoder = nn.ModuleList(
            [ConvBlock(chans[lv] + chans[lv + 1], chans[lv], norm, dims) for lv in range(depth)]
        )
        self.gates = nn.ModuleList(
            [AttentionGate(chans[lv], chans[lv + 1], dims=dims) for lv in range(depth)]
            if attention
            else []
        )
        self.head = conv(dims)(chans[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, 2**self.depth)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else max_pool(x))
            skips.append(x)
        d = skips.pop()
        for level in reversed(range(self.depth)):
            skip = skips[level]
            if self.attention:
                skip, _ = self.gates[level](skip, d)
            d = resize(d, skip.shape[2:])
            d = self.decoder[level](torch.cat([skip, d], dim=1))
        return crop_to(self.head(d), size)


def attunet(
    in_channels: int,
    num_classes: int,
    width: int = 16,
    depth: int = 4,
    norm: str = "batch",
    spatial_dims: int = 2,
) -> UNet:
    """Attention U-Net (Oktay et al., 2018): U-Net with additive attention-gated skips.

    Args:
        in_channels: channels of the input, ``(B, in_channels, H, W)`` float32.
        num_classes: logit channels ``K``, background included.
        width: channels of the first level (doubled at each of the ``depth`` levels).
        depth: number of 2x downsampling steps, 1 to 5.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.
        spatial_dims: 2 or 3; set by the run (``--patch-size`` makes it 3).

    Returns:
        A module mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``
        (in 3D, ``(B, in_channels, D, H, W)`` to ``(B, num_classes, D, H, W)``).
    """
    return UNet(in_channels, num_classes, width, depth, True, norm, spatial_dims)


def unet(
    in_channels: int,
    num_classes: int,
    width: int = 16,
    depth: int = 4,
    norm: str = "batch",
    spatial_dims: int = 2,
) -> UNet:
    """U-Net (Ronneberger et al., 2015) with bilinear upsampling; attunet without gates.

    Args:
        in_channels: channels of the input, ``(B, in_channels, H, W)`` float32.
        num_classes: logit channels ``K``, background included.
        width: channels of the first level (doubled at each of the ``depth`` levels).
        depth: number of 2x downsampling steps, 1 to 5.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.
        spatial_dims: 2 or 3; set by the run (``--patch-size`` makes it 3).

    Returns:
        A module mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``
        (in 3D, ``(B, in_channels, D, H, W)`` to ``(B, num_classes, D, H, W)``).
    """
    return UNet(in_channels, num_classes, width, depth, False, norm, spatial_dims)
