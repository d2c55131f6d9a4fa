"""Visual information fidelity: Sheikh & Bovik's multi-scale pixel-domain VIF.

The computation behind :func:`benchbox.metrics.fusion.compute_vif`, which documents the
metric; here the reference code's arithmetic, arranged to run fast (one filtering of
all local statistics per strip of rows, masks reduced to what they amount to).
"""

from __future__ import annotations

import numpy as np

from benchbox.metrics.filters import gaussian_taps, row_strips, valid_filter

__all__ = ["vif_pixel"]


def _vif_terms(
    stats: np.ndarray, k: int, sigma_nsq: float, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """The numerator and denominator sums of ``k`` references from their local
    statistics ``(mu_dist, mu_refs, dist², refs², dist·refs)``; overwrites ``stats``."""
    mu2, mu1 = stats[:1], stats[1 : k + 1]
    s2 = stats[k + 1 : k + 2]
    s2 -= mu2 * mu2
    np.maximum(s2, 0, out=s2)
    s1 = stats[k + 2 : 2 * k + 2]
    s1 -= mu1 * mu1
    np.maximum(s1, 0, out=s1)
    s12 = stats[2 * k + 2 :]
    s12 -= mu1 * mu2
    gain = s12 / (s1 + eps)
    informative = s1 >= eps
    counts = informative & (s2 >= eps)
    counts &= gain > 0
    sv = s2 - gain * s12
    np.maximum(sv, eps, out=sv)
    sv += sigma_nsq
    ratio = gain**2 * s1
    ratio /= sv
    ratio += 1
    # log10 of every pixel, then the uncounted zeroed: a masked log10 would take NumPy's
    # scalar path, whose last bit can differ from its vectorised one.
    terms = np.log10(ratio, out=ratio)
    np.copyto(terms, 0.0, where=~counts)
    num = terms.sum(axis=(1, 2))
    ratio = s1 / sigma_nsq
    ratio += 1
    terms = np.log10(ratio, out=ratio)
    np.copyto(terms, 0.0, where=~informative)
    return num, terms.sum(axis=(1, 2))


def vif_pixel(images: np.ndarray, sigma_nsq: float = 2.0) -> np.ndarray:
    """Sheikh & Bovik's multi-scale pixel-domain VIF (``vifp_mscale.m``) on 0-255 images.

    ``images`` is a stack ``(1 + k, H, W)``: the distorted image, then the ``k``
    references scored against it; returns the ``k`` VIF values.

    The reference code's arithmetic on the pixels that count, in one pass per scale:
    its local statistics (the means and squares of all ``1 + k`` images and the ``k``
    cross products) are filtered together, strip by strip of rows
    (:func:`~benchbox.metrics.filters.row_strips`), the next scale is filtered only
    where it is kept (``valid_filter(..., step=2)``), and the reference's chain of
    masked assignments is replaced by what it amounts to (:func:`_vif_terms`):

    * a pixel adds ``log10(1 + g² σ1² / (max(σ2² - g σ12, eps) + σn²))`` to the
      numerator only where ``σ1² >= eps``, ``σ2² >= eps`` and the gain
      ``g = σ12 / (σ1² + eps) > 0`` (elsewhere the reference sets ``g = 0``, a zero
      term);
    * and ``log10(1 + σ1² / σn²)`` to the denominator only where ``σ1² >= eps``
      (elsewhere the reference sets ``σ1² = 0``).
    """
    eps = 1e-10
    k = images.shape[0] - 1
    num, den = np.zeros(k), np.zeros(k)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g = gaussian_taps(n, n / 5.0)
        if scale > 1:
            images = valid_filter(images, g, step=2)
        if min(images.shape[1:]) < n:  # the reference's sums over empty maps add 0
            continue
        for start, stop in row_strips(images.shape[1] - n + 1):
            block = images[:, start : stop + n - 1]
            stack = np.empty((3 * k + 2, *block.shape[1:]))
            stack[: k + 1] = block
            np.multiply(block, block, out=stack[k + 1 : 2 * k + 2])
            np.multiply(block[:1], block[1:], out=stack[2 * k + 2 :])
            strip_num, strip_den = _vif_terms(
                valid_filter(stack, g, transposed=True), k, sigma_nsq, eps
            )
            num += strip_num
            den += strip_den
    # A reference without any variance carries no information to lose.
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 1.0)
