"""Early fusion by channel concatenation: the control for the dual encoder's claim.

The seed article claims that separate encoders ("keep modality-specific features") give
+12 % SSIM over direct concatenation. :class:`ConcatFusion` is that direct
concatenation, built from the same parts as ``dual`` so that the encoders are the only
difference: the two sources are stacked as two channels of one image and go through
ONE encoder pyramid; its maps are the decoder's skips (there is nothing to fuse, so no
1x1 fusion layers); the U-Net decoder, the 1x1 head and the residual start at the
sources' average are ``dual``'s.

Comparable size: one encoder of width ``w`` has about half the weights of two, so at
equal width ``concat`` would be the smaller model. Its default width is 21 so that at
the default depth 3 the two models have about the same number of parameters:

==========================  ===========  ==========
model                        parameters  vs ``dual``
==========================  ===========  ==========
``dual`` (width 16)              825,425       1.000
``concat`` (width 21)            839,707       1.017
``concat`` (width 16)            487,857       0.591
==========================  ===========  ==========

(Counts with batch norm, which has 2 parameters per channel; ``tests/plugins/fusion/
test_concat.py`` checks them.) At other depths the matching width differs; compare
with :func:`count_parameters`.
"""

from __future__ import annotations

import torch
from torch import nn

from benchbox_plugins.fusion.dual import (
    PyramidEncoder,
    decode,
    decoder_blocks,
    pyramid_channels,
    residual_head,
)
from benchbox_plugins.segmenters.attunet import pad_to_multiple


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


class ConcatFusion(nn.Module):
    """Early-fusion network: the sources concatenated as channels, one encoder, U-Net decoder.

    Args:
        width: channels of the encoder's first level; level ``l`` has ``width * 2**l``.
            The default 21 matches ``dual``'s parameter count at its default width 16
            (839,707 against 825,425 at depth 3; see the module docstring).
        depth: number of 2x downsampling steps, 1 to 4.
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.
        residual: predict a correction, in logit space, to the sources' average
            (starting at zero, so the untrained network is the ``mean`` baseline), as
            ``dual`` does; ``False`` gives a plain sigmoid decoder.
        base: what the residual form starts from, ``"mean"`` or ``"max"`` (as ``dual``).

    Shapes: ``forward(a, b)`` with ``a`` and ``b`` ``float32 (B, 1, H, W)`` in ``[0, 1]``
    returns the fused image ``float32 (B, 1, H, W)`` in ``[0, 1]``. Sides that are not
    multiples of ``2**depth`` are replicate-padded and cropped back.
    """

    def __init__(
        self,
        width: int = 21,
        depth: int = 3,
        norm: str = "batch",
        residual: bool = True,
        base: str = "mean",
    ) -> None:
        super().__init__()
        chans = pyramid_channels(width, depth, norm, base)
        self.depth = depth
        self.encoder = PyramidEncoder(chans, norm, in_channels=2)
        self.decoder = decoder_blocks(chans, norm)
        self.head = nn.Conv2d(chans[0], 1, kernel_size=1)
        self.residual, self.base = residual, base
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(
                f"the sources must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        a, (h, w) = pad_to_multiple(a, 2**self.depth)
        b, _ = pad_to_multiple(b, 2**self.depth)
        logits = self.head(decode(self.decoder, self.encoder(torch.cat([a, b], dim=1))))
        out = residual_head(logits, a, b, self.base) if self.residual else torch.sigmoid(logits)
        return out[..., :h, :w]
