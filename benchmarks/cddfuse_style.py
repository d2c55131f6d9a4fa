"""A timing stand-in for the CDDFuse evaluator (``utils/Evaluator.py`` of
Zhaozixiang1228/MMIF-CDDFuse), the Python evaluator much of the fusion literature copies.

Written here from a reading of what that evaluator computes, not copied: the eight
metrics its test script reports per image pair (EN, SD, SF, MI, SCD, VIF, Qabf, SSIM),
on 0-255 float images, with the same libraries and the same kind of work:

* VIF: Sheikh's four scales, every filtering a full 2D ``scipy.signal.convolve2d``
  ('valid') of an ``N x N`` Gaussian, five filterings per scale, run once per source;
* Qabf: 3x3 Sobel responses by ``convolve2d`` ('same'), orientation by ``arctan`` with
  boolean-mask assignments, the sigmoid terms per source;
* MI: ``sklearn.metrics.mutual_info_score`` of the raw pixel values (a contingency
  table of every distinct value), per source;
* SSIM: ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform
  window), per source;
* EN by ``bincount``, SD, SF and SCD with NumPy.

Only its cost matters to ``metrics_speed.py``; its values differ from benchbox's where
docs/metrics.md says the two definitions differ.
"""

from __future__ import annotations

import math

import numpy as np


def _entropy(img: np.ndarray) -> float:
    counts = np.bincount(np.uint8(np.round(img)).ravel())
    p = counts / counts.sum()
    return float(-(p * np.log2(p + (p == 0))).sum())


def _spatial_frequency(img: np.ndarray) -> float:
    rows = np.mean((img[:, 1:] - img[:, :-1]) ** 2)
    cols = np.mean((img[1:, :] - img[:-1, :]) ** 2)
    return float(np.sqrt(rows + cols))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc * yc).sum() / np.sqrt((xc**2).sum() * (yc**2).sum()))


def _window(n: int) -> np.ndarray:
    half = (n - 1) / 2
    yy, xx = np.ogrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(xx * xx + yy * yy) / (2 * (n / 5.0) ** 2))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def _vif_one(ref: np.ndarray, dist: np.ndarray) -> float:
    from scipy.signal import convolve2d

    noise, eps = 2.0, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        win = np.rot90(_window(2 ** (5 - scale) + 1), 2)

        def filt(x: np.ndarray, win: np.ndarray = win) -> np.ndarray:
            return convolve2d(x, win, mode="valid")

        if scale > 1:
            ref, dist = filt(ref)[::2, ::2], filt(dist)[::2, ::2]
        mu1, mu2 = filt(ref), filt(dist)
        s1 = np.maximum(filt(ref * ref) - mu1 * mu1, 0)
        s2 = np.maximum(filt(dist * dist) - mu2 * mu2, 0)
        s12 = filt(ref * dist) - mu1 * mu2
        gain = s12 / (s1 + eps)
        sv = s2 - gain * s12
        low1 = s1 < eps
        gain[low1], sv[low1], s1[low1] = 0, s2[low1], 0
        low2 = s2 < eps
        gain[low2], sv[low2] = 0, 0
        neg = gain < 0
        sv[neg], gain[neg] = s2[neg], 0
        sv[sv <= eps] = eps
        num += float(np.log10(1 + gain * gain * s1 / (sv + noise)).sum())
        den += float(np.log10(1 + s1 / noise).sum())
    value = num / den if den else float("nan")
    return 1.0 if math.isnan(value) else value


def _sobel_polar(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import convolve2d

    vertical = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float32)
    horizontal = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    sx = convolve2d(img, horizontal, mode="same")
    sy = convolve2d(img, vertical, mode="same")
    strength = np.sqrt(sx * sx + sy * sy)
    angle = np.zeros_like(img)
    angle[sx == 0] = math.pi / 2
    nz = sx != 0
    angle[nz] = np.arctan(sy[nz] / sx[nz])
    return strength, angle


def _edge_transfer(a_src: np.ndarray, g_src: np.ndarray, a_f: np.ndarray, g_f: np.ndarray):
    ratio = np.zeros_like(a_src)
    weaker_f = g_src > g_f
    ratio[weaker_f] = g_f[weaker_f] / g_src[weaker_f]
    equal = g_src == g_f
    ratio[equal] = g_f[equal]
    stronger_f = g_src < g_f
    ratio[stronger_f] = g_src[stronger_f] / g_f[stronger_f]
    orient = 1 - np.abs(a_src - a_f) / (math.pi / 2)
    q_g = 0.9994 / (1 + np.exp(-15 * (ratio - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))
    return q_g * q_a


def _qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    g_a, a_a = _sobel_polar(a)
    g_b, a_b = _sobel_polar(b)
    g_f, a_f = _sobel_polar(f)
    q_af = _edge_transfer(a_a, g_a, a_f, g_f)
    q_bf = _edge_transfer(a_b, g_b, a_f, g_f)
    return float((q_af * g_a + q_bf * g_b).sum() / (g_a + g_b).sum())


def evaluate(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The eight metrics of one pair of 0-255 float images, CDDFuse's way."""
    from skimage.metrics import structural_similarity
    from sklearn.metrics import mutual_info_score

    return {
        "EN": _entropy(f),
        "SD": float(np.std(f)),
        "SF": _spatial_frequency(f),
        "MI": float(
            mutual_info_score(f.ravel(), a.ravel()) + mutual_info_score(f.ravel(), b.ravel())
        ),
        "SCD": _corr(a, f - b) + _corr(b, f - a),
        "VIF": _vif_one(a, f) + _vif_one(b, f),
        "Qabf": _qabf(f, a, b),
        "SSIM": float(
            structural_similarity(f, a, data_range=255)
            + structural_similarity(f, b, data_range=255)
        ),
    }
