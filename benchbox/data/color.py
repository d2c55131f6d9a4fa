"""Colour sources (pseudo-colour PET, SPECT): the YCbCr split used by fusion papers.

A colour source is fused through its luma: the image is converted to YCbCr (ITU-R
BT.601, full range, as JPEG and OpenCV's ``COLOR_RGB2YCrCb`` define it), ``Y`` is fused
with the greyscale source, and the source's ``Cb``/``Cr`` are put back on the fused
``Y`` for the saved colour image. Fusion metrics are computed on ``Y``.

Written out here because it is three lines of matrix algebra on float arrays; the
library versions round to 8 bits (Pillow) or use the studio range 16-235
(``skimage.color.rgb2ycbcr``). Tests compare with Pillow.
"""

from __future__ import annotations

import numpy as np

# Rows give Y, Cb, Cr from R, G, B (BT.601 full range); offsets 0, 0.5, 0.5 in [0, 1].
_RGB2YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ]
)
_OFFSET = np.array([0.0, 0.5, 0.5])
_YCBCR2RGB = np.linalg.inv(_RGB2YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3)`` RGB in ``[0, 1]`` to ``(..., 3)`` YCbCr in ``[0, 1]``."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb @ _RGB2YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3)`` YCbCr in ``[0, 1]`` to RGB, clipped to ``[0, 1]``."""
    ycbcr = np.asarray(ycbcr, dtype=np.float64)
    return np.clip((ycbcr - _OFFSET) @ _YCBCR2RGB.T, 0.0, 1.0)


def merge_chroma(luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Put a colour source's chroma back on a fused luma image.

    Args:
        luma: the fused image ``(H, W)`` in ``[0, 1]`` (e.g. ``fused[0]`` of a sample).
        chroma: the colour source's ``(2, H, W)`` ``Cb``/``Cr`` in ``[0, 1]`` (the
            sample key ``a_chroma`` or ``b_chroma``).

    Returns:
        The fused colour image ``(H, W, 3)``, RGB in ``[0, 1]``; multiply by 255 and
        round for an 8-bit PNG.
    """
    luma = np.asarray(luma, dtype=np.float64)
    chroma = np.asarray(chroma, dtype=np.float64)
    if luma.ndim != 2 or chroma.shape != (2, *luma.shape):
        raise ValueError(
            f"merge_chroma needs luma (H, W) and chroma (2, H, W); got {luma.shape} and "
            f"{chroma.shape}"
        )
    return ycbcr_to_rgb(np.stack([luma, chroma[0], chroma[1]], axis=-1))
