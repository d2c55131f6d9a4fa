"""Colour sources (pseudo-colour PET, SPECT): grey conversion and the YCbCr split.

Every reader of benchbox turns pixels into grey values the same way, the way the
field's tools read an image (OpenCV ``imread`` + ``cvtColor(..., COLOR_RGB2GRAY)``,
Pillow ``convert("L")``, the CDDFuse and VIFB evaluators):

* an alpha channel is dropped, not composited (grey+alpha -> grey, RGBA -> RGB);
* an RGB image whose three channels are equal everywhere is a grey image;
* a colour image becomes its ITU-R BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``,
  rounded to the source's integer type (8-bit stays 8-bit) so that the 256-bin
  histograms of EN and MI see the same grey levels as those tools (see
  ``docs/metrics.md``, "Colour sources").

For fusion, a colour source is split into YCbCr (BT.601 full range, as JPEG and
OpenCV's ``COLOR_RGB2YCrCb`` define it): ``Y`` (the rounded luma above) is fused with
the greyscale source, and the source's ``Cb``/``Cr`` are put back on the fused ``Y`` for
the saved colour image. The chroma stays in floating point; only ``Y`` is measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchbox.errors import DataError

__all__ = [
    "BT601_LUMA",
    "channels",
    "merge_chroma",
    "rgb_to_grey",
    "rgb_to_ycbcr",
    "to_grey",
    "ycbcr_to_rgb",
]

#: ITU-R BT.601 luma weights of R, G, B: the one definition in benchbox.
BT601_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)

# The same weights in thousandths (299, 587, 114; they sum to 1000), for exact integer
# rounding of the luma of integer pixels.
_LUMA_MILLI = np.array([round(w * 1000) for w in BT601_LUMA], dtype=np.int64)


def _ycbcr_matrix() -> np.ndarray:
    kr, kg, kb = BT601_LUMA
    luma = np.array([kr, kg, kb])
    # Cb = (B - Y) / (2 (1 - kb)), Cr = (R - Y) / (2 (1 - kr)): chroma in [-0.5, 0.5].
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - kr))
    return np.stack([luma, cb, cr])


# Rows give Y, Cb, Cr from R, G, B; offsets 0, 0.5, 0.5 put all three in [0, 1].
_RGB2YCBCR = _ycbcr_matrix()
_OFFSET = np.array([0.0, 0.5, 0.5])
_YCBCR2RGB = np.linalg.inv(_RGB2YCBCR)


def channels(
    array: np.ndarray, components: int, path: str | Path | None = None
) -> tuple[np.ndarray, bool]:
    """A pixel array as grey ``(...)`` or RGB ``(..., 3)``, read as image tools read it.

    Args:
        array: the pixels, with a trailing channel axis when ``components > 1``.
        components: values per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
        path: the file, for the error message.

    Returns:
        ``(pixels, is_colour)``: the alpha channel dropped, and an RGB image whose
        three channels are equal everywhere returned as grey (``is_colour`` False).

    Raises:
        DataError: another number of values per pixel.
    """
    if components == 1:
        return array, False
    if components == 2:
        return array[..., 0], False
    if components not in (3, 4):
        raise DataError(
            f"{path or 'image'}: {components} values per pixel; expected grey, RGB or RGBA"
        )
    rgb = array[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., 0], False
    return rgb, True


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``(..., 3)`` RGB, rounded to the input's integer type.

    Integer pixels give ``round(0.299 R + 0.587 G + 0.114 B)`` (halves up, computed
    exactly in integers) in the input's dtype: what OpenCV's ``COLOR_RGB2GRAY`` and
    Pillow's ``convert("L")`` compute with fixed-point weights, which differ from it by
    one level on about 0.1 % of the 2^24 8-bit colours (near halves) and on none of
    the AANLIB PET/SPECT pixels. Float pixels give the unrounded ``float64`` luma.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"rgb_to_grey needs (..., 3) RGB, got shape {rgb.shape}")
    if np.issubdtype(rgb.dtype, np.integer):
        total = rgb.astype(np.int64) @ _LUMA_MILLI
        return ((total + 500) // 1000).astype(rgb.dtype)
    return rgb.astype(np.float64) @ np.asarray(BT601_LUMA)


def to_grey(array: np.ndarray, components: int, path: str | Path | None = None) -> np.ndarray:
    """Grey values of any pixel array: :func:`channels`, then :func:`rgb_to_grey`."""
    pixels, colour = channels(array, components, path)
    return rgb_to_grey(pixels) if colour else pixels


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3)`` RGB in ``[0, 1]`` to ``(..., 3)`` YCbCr in ``[0, 1]`` (floats)."""
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
