"""``timm-dual``: a fusion network with a timm backbone encoding each modality.

Each source goes through a timm feature extractor (``features_only=True``, one input
channel), shared between the two sources or one per source. At every feature level the
two maps are fused (concatenation + 1x1 convolution, mean or max), then a U-Net-style
decoder upsamples from the deepest level, merging each shallower one, up to the full
input resolution, where the two sources themselves join for a last 3x3 convolution
before a sigmoid. Upsampling goes to each skip's exact size, so any H and W work, not
only multiples of the backbone's stride.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchbox import ConfigError
from benchbox_plugins.backbones._timm import build_timm, check_timm_model

FUSE_MODES = ("concat", "mean", "max")


def _conv_bn_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _Fuse(nn.Module):
    """Merge one level's two feature maps into ``width`` channels."""

    def __init__(self, channels: int, width: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.proj = _conv_bn_relu(2 * channels if mode == "concat" else channels, width, 1)

    def forward(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            x = torch.cat([fa, fb], dim=1)
        elif self.mode == "mean":
            x = (fa + fb) / 2
        else:
            x = torch.maximum(fa, fb)
        return self.proj(x)


class TimmDualFusion(nn.Module):
    """Dual-encoder fusion on a timm backbone; output ``(B, 1, H, W)`` in ``[0, 1]``.

    Args:
        backbone: any timm model that supports ``features_only=True``.
        shared: one encoder for both sources (half the encoder parameters) instead of
            one per source.
        fuse: how each level's two feature maps are merged: ``concat`` (then a learned
            1x1 convolution), ``mean`` or ``max``.
        decoder_channels: width of every decoder stage.
        weights: a local file with the backbone's pretrained weights (a timm
            checkpoint, e.g. the ``model.safetensors`` of a timm model); timm adapts
            its first convolution to one channel and drops the classifier. ``None``
            initialises randomly; nothing is ever downloaded.
        backbone_params: extra ``timm.create_model`` arguments (e.g. ``drop_path_rate``).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        *,
        shared: bool = False,
        fuse: str = "concat",
        decoder_channels: int = 32,
        weights: str | os.PathLike[str] | None = None,
        backbone_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        what = f"timm-dual backbone {backbone!r}"
        check_timm_model(backbone, "timm-dual")
        if fuse not in FUSE_MODES:
            raise ConfigError(
                f"timm-dual: fuse must be one of {', '.join(FUSE_MODES)}, not {fuse!r}"
            )
        if isinstance(decoder_channels, bool) or not isinstance(decoder_channels, int):
            raise ConfigError(
                f"timm-dual: decoder_channels must be an integer, not {decoder_channels!r}"
            )
        if decoder_channels < 1:
            raise ConfigError(f"timm-dual: decoder_channels must be >= 1, not {decoder_channels}")
        if backbone_params is not None and not isinstance(backbone_params, Mapping):
            raise ConfigError(f"timm-dual: backbone_params must be a dict, not {backbone_params!r}")
        extra = dict(backbone_params or {})

        def create(**pretrained: Any) -> nn.Module:
            try:
                return timm.create_model(
                    backbone, features_only=True, in_chans=1, **extra, **pretrained
                )
            except (TypeError, ValueError, AssertionError, NotImplementedError) as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ConfigError(f"{what} cannot be a feature extractor: {message}") from exc

        self.encoder_a = build_timm(what, backbone, weights, create)
        self.encoder_b = self.encoder_a if shared else build_timm(what, backbone, weights, create)
        self.shared = shared
        self.backbone = backbone

        channels = list(self.encoder_a.feature_info.channels())
        self.channels_last = getattr(self.encoder_a, "output_fmt", "NCHW") == "NHWC"
        cfg = getattr(self.encoder_a, "pretrained_cfg", None) or {}
        # A 1-channel input stands for a grey RGB image: timm sums the first conv over
        # RGB, so normalise with the mean of the per-channel statistics.
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        self.mean, self.std = float(sum(mean) / len(mean)), float(sum(std) / len(std))

        width = decoder_channels
        self.fuse = nn.ModuleList(_Fuse(c, width, fuse) for c in channels)
        self.up = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(2 * width, width, 3), _conv_bn_relu(width, width, 3))
            for _ in channels[:-1]
        )
        self.refine = nn.Sequential(
            nn.Conv2d(width + 2, width, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.head = nn.Conv2d(width, 1, 1)

    def _features(self, encoder: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        feats = encoder((x - self.mean) / self.std)
        if self.channels_last:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        return list(feats)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        size = a.shape[-2:]
        fused = [
            f(x, y)
            for f, x, y in zip(
                self.fuse,
                self._features(self.encoder_a, a),
                self._features(self.encoder_b, b),
                strict=True,
            )
        ]
        x = fused[-1]
        for block, skip in zip(self.up, reversed(fused[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = self.refine(torch.cat([x, a, b], dim=1))
        return torch.sigmoid(self.head(x))

    def extra_repr(self) -> str:
        return f"backbone={self.backbone!r}, shared={self.shared}"
