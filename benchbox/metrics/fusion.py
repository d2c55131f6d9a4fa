"""Image-fusion metrics on 2D float images in ``[0, 1]``.

Each function takes the fused image ``fused`` (``F``) and, where the definition needs
them, the two sources ``a`` (``A``) and ``b`` (``B``): 2D arrays of one shape, finite,
with values in ``[0, 1]`` (8-bit images divided by 255). They compute in ``float64`` and
return plain finite floats (SSIM a dict). ``docs/metrics.md`` gives every formula, the
reference each one follows and where benchbox deliberately departs from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchbox.metrics._checks import check_image, check_images, check_min_size
from benchbox.metrics._share import memo
from benchbox.metrics.filters import gaussian_taps, row_strips, sobel_polar, valid_filter
from benchbox.metrics.vif import vif_pixel

__all__ = [
    "BINS",
    "MS_SSIM_MIN_SIZE",
    "MS_SSIM_WEIGHTS",
    "PSNR_MSE_FLOOR",
    "QABF_CONSTANTS",
    "SSIM_MIN_SIZE",
    "VIF_MIN_SIZE",
    "compute_ag",
    "compute_en",
    "compute_mi",
    "compute_ms_ssim",
    "compute_nabf",
    "compute_psnr",
    "compute_qabf",
    "compute_scd",
    "compute_sd",
    "compute_sf",
    "compute_ssim",
    "compute_vif",
]

#: Histogram bins of EN and MI: ``[0, 1]`` in 256 bins, so an 8-bit value ``v / 255``
#: falls in bin ``v`` exactly as in the 0-255 integer histograms of VIFB and CDDFuse.
BINS = 256
#: MS-SSIM weights of Wang, Simoncelli & Bovik (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Smallest image side MS-SSIM accepts: an 11-pixel window at the fifth (1/16) scale.
MS_SSIM_MIN_SIZE = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
#: Smallest image side SSIM accepts: its 11x11 window (``benchbox.metrics.ssim.WINDOW``).
SSIM_MIN_SIZE = 11
#: Smallest image side VIF accepts: its 17x17 window at the finest scale.
VIF_MIN_SIZE = 17
#: Qabf constants of Xydeas & Petrovic (2000) as VIFB's ``metricsQabf.m`` sets them.
QABF_CONSTANTS = {"Tg": 0.9994, "kg": -15.0, "Dg": 0.5, "Ta": 0.9879, "ka": -22.0, "Da": 0.8}
#: PSNR's MSE floor: identical images give 100 dB instead of infinity.
PSNR_MSE_FLOOR = 1e-10


def _images(fused: Any, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked images; checked once per case while the metrics share their work."""
    return memo("images", (fused, a, b), lambda: check_images(fused, a, b))


def _stacked(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The checked images as one ``(3, H, W)`` stack ``(F, A, B)``, made once per case."""
    return memo("stack", (f, a, b), lambda: np.stack([f, a, b]))


# -- information -----------------------------------------------------------------------
def _bin_index(x: np.ndarray) -> np.ndarray:
    """Each pixel's histogram bin, computed once per image while metrics share work."""
    return memo("bins", (x,), lambda: np.minimum((x * BINS).astype(np.intp), BINS - 1).ravel())


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def compute_en(image: Any) -> float:
    """Entropy (EN) of an image, in bits.

    ``EN = -sum_k p_k log2 p_k`` over the 256-bin histogram of ``[0, 1]`` (bin
    ``k = min(floor(256 x), 255)``).

    Range ``[0, 8]``, higher is better (more information). A constant image gives 0.

    Args:
        image: the fused image, 2D in ``[0, 1]``.
    """
    x = check_image("image", image)
    return _entropy_bits(np.bincount(_bin_index(x), minlength=BINS))


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    ix, iy = _bin_index(x), _bin_index(y)
    pairs = ix * BINS
    pairs += iy
    joint = np.bincount(pairs, minlength=BINS * BINS).reshape(BINS, BINS)
    mi = (
        _entropy_bits(joint.sum(axis=1))
        + _entropy_bits(joint.sum(axis=0))
        - _entropy_bits(joint.ravel())
    )
    return max(mi, 0.0)


def compute_mi(fused: Any, a: Any, b: Any) -> float:
    """Mutual information of the fused image with both sources, in bits (log base 2).

    ``MI = MI(A, F) + MI(B, F)`` with ``MI(X, F) = H(X) + H(F) - H(X, F)`` over the
    256-bin (joint) histograms of ``[0, 1]``.

    Range ``[0, 16]``, higher is better.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    return _mutual_information(a_, f) + _mutual_information(b_, f)


# -- intensity and gradients -----------------------------------------------------------
def compute_sd(image: Any) -> float:
    """Standard deviation (SD) of the fused image: its contrast.

    ``SD = sqrt(mean((F - mean F)^2))`` (population form).

    Range ``[0, 0.5]`` on ``[0, 1]`` images, higher is better.

    Args:
        image: the fused image, 2D in ``[0, 1]``.
    """
    return float(np.std(check_image("image", image)))


def compute_sf(image: Any) -> float:
    """Spatial frequency (SF, Eskicioglu & Fisher 1995): overall activity.

    ``SF = sqrt(RF^2 + CF^2)``, ``RF^2 = mean((F[i, j] - F[i, j-1])^2)`` over the
    ``H x (W - 1)`` horizontal neighbours and ``CF^2`` likewise over the ``(H - 1) x W``
    vertical ones.

    Range ``[0, sqrt(2)]`` on ``[0, 1]`` images, higher is better. A constant image
    gives 0.

    Args:
        image: the fused image, 2D in ``[0, 1]``.
    """
    f = check_image("image", image)
    check_min_size("fused", f.shape, 2, "SF")
    rf2 = np.mean(np.diff(f, axis=1) ** 2)
    cf2 = np.mean(np.diff(f, axis=0) ** 2)
    return float(np.sqrt(rf2 + cf2))


def compute_ag(image: Any) -> float:
    """Average gradient (AG): mean local gradient magnitude, a sharpness measure.

    ``AG = mean(sqrt((Gx^2 + Gy^2) / 2))`` with ``Gx, Gy = numpy.gradient(F)`` (central
    differences inside, one-sided at the borders, as MATLAB's ``gradient``).

    Range ``[0, 1]`` on ``[0, 1]`` images, higher is better. A constant image gives 0.

    Args:
        image: the fused image, 2D in ``[0, 1]``.
    """
    f = check_image("image", image)
    check_min_size("fused", f.shape, 2, "AG")
    gy, gx = np.gradient(f)
    np.multiply(gx, gx, out=gx)  # in place: (gx² + gy²) / 2 without temporaries
    np.multiply(gy, gy, out=gy)
    gx += gy
    gx /= 2
    return float(np.mean(np.sqrt(gx, out=gx)))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xc**2).sum()) * float((yc**2).sum()))
    return float((xc * yc).sum()) / den if den > 0 else 0.0


def compute_scd(fused: Any, a: Any, b: Any) -> float:
    """Sum of the correlations of differences (SCD, Aslantas & Bendes 2015).

    ``SCD = r(F - B, A) + r(F - A, B)`` with ``r`` Pearson's correlation; ``r`` is taken
    as 0 when either image is constant (for instance ``F - A`` when ``F = A``).

    Range ``[-2, 2]``, higher is better. Symmetric in ``A`` and ``B``.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    return _correlation(f - b_, a_) + _correlation(f - a_, b_)


# -- VIF -------------------------------------------------------------------------------
def compute_vif(fused: Any, a: Any, b: Any) -> float:
    """Visual information fidelity (Sheikh & Bovik 2006), multi-scale pixel domain.

    ``VIF = VIF(A, F) + VIF(B, F)``; ``VIF(X, F)`` is the ratio of the information ``F``
    keeps about ``X`` to the information in ``X``, summed over four scales (Gaussian
    windows of 17, 9, 5 and 3 pixels, sigma ``N / 5``) with the noise variance
    ``sigma_n^2 = 2`` of the reference code, which assumes 0-255 images: the images are
    multiplied by 255 first. ``VIF(X, X) = 1``; a constant ``X`` gives 1.

    Range ``[0, 2]`` for usual images (contrast enhancement can exceed 1 per source),
    higher is better. Symmetric in ``A`` and ``B``.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``, at least 17x17.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    check_min_size("fused", f.shape, VIF_MIN_SIZE, "VIF")
    return float(vif_pixel(_stacked(f, a_, b_) * 255.0).sum())


# -- Qabf, Nabf ------------------------------------------------------------------------
def _edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray
) -> np.ndarray:
    """``Q^XF`` of each source of the stacks ``g_src``, ``a_src`` against ``F``."""
    c = QABF_CONSTANTS
    weaker, stronger = np.minimum(g_src, g_f), np.maximum(g_src, g_f)
    # min / max: gF / gX where F is weaker, gX / gF where stronger; equal strengths
    # (including both 0) preserve fully.
    ratio = np.divide(weaker, stronger, out=np.ones_like(weaker), where=weaker != stronger)
    # Orientations are lines (arctan gives them modulo π), so a difference of π is
    # agreement: Petrovic's and Kumar's code form, continuous where VIFB's is not.
    orientation = np.abs(np.abs(a_src - a_f) - np.pi / 2) / (np.pi / 2)
    q_g = c["Tg"] / (1 + np.exp(c["kg"] * (ratio - c["Dg"])))
    q_a = c["Ta"] / (1 + np.exp(c["ka"] * (orientation - c["Da"])))
    return q_g * q_a


def _qabf_sums(fused: Any, a: Any, b: Any) -> tuple[float, float, float]:
    """``(sum(Q^AF gA + Q^BF gB), sum over M of ((1 - Q^AF) gA + (1 - Q^BF) gB),
    sum(gA + gB))``: the numerators of Qabf and Nabf and their denominator, shared by
    the two, computed strip by strip of rows."""
    f, a_, b_ = _images(fused, a, b)

    def compute() -> tuple[float, float, float]:
        images = _stacked(f, a_, b_)
        qabf = nabf = den = 0.0
        for start, stop in row_strips(f.shape[0]):
            strength, angle = sobel_polar(images, start, stop)
            gf, ga, gb = strength[0], strength[1], strength[2]
            q = _edge_preservation(strength[1:], angle[1:], strength[:1], angle[:1])
            qabf += float((q[0] * ga + q[1] * gb).sum())
            artefact = (gf > ga) & (gf > gb)
            nabf += float(((1 - q[0]) * ga + (1 - q[1]) * gb)[artefact].sum())
            den += float((ga + gb).sum())
        return qabf, nabf, den

    return memo("qabf", (f, a_, b_), compute)


def compute_qabf(fused: Any, a: Any, b: Any) -> float:
    """Gradient-based fusion quality Qabf (Xydeas & Petrovic 2000).

    Sobel edge strength ``g`` and orientation ``α = arctan(sy / sx)`` (``π/2`` where
    ``sx = 0``) of each image, from 3x3 Sobel responses with zero padding (MATLAB's
    ``conv2(..., 'same')``). Per pixel, for a source ``X``:

    * strength ratio ``G = min(gX, gF) / max(gX, gF)``, and 1 where ``gX = gF``
      (including both 0; VIFB's code gives ``gF`` there);
    * orientation agreement ``Aα = | |αX - αF| - π/2 | / (π/2)``, Petrovic's form:
      orientations are lines, so ``π/2`` and ``-π/2`` agree (VIFB's
      ``1 - |αX - αF| / (π/2)`` calls them opposite);
    * preservation ``Q^XF = Tg / (1 + e^(kg (G - Dg))) · Ta / (1 + e^(ka (Aα - Da)))``
      with Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8.

    Then ``Qabf = sum(Q^AF gA + Q^BF gB) / sum(gA + gB)`` (weights ``g^L``, ``L = 1``).

    Range ``[0, 0.9748]``: with these usual constants a perfect transfer gives
    ``Tg / (1 + e^(kg/2)) · Ta / (1 + e^(ka/5)) ≈ 0.9748``, not 1. Higher is better.
    Symmetric in ``A`` and ``B``. Sources without any edge give 1.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    qabf, _, den = _qabf_sums(fused, a, b)
    return qabf / den if den > 0 else 1.0


def compute_nabf(fused: Any, a: Any, b: Any) -> float:
    """Fusion artefacts Nabf (Petrovic & Xydeas, as modified by Kumar 2013).

    The share of edge strength that ``F`` shows where it is stronger than both sources:
    ``Nabf = sum(M · ((1 - Q^AF) gA + (1 - Q^BF) gB)) / sum(gA + gB)`` with ``M = 1``
    where ``gF > gA`` and ``gF > gB`` and 0 elsewhere, and ``Q``, ``g`` as in
    :func:`compute_qabf`.

    Range ``[0, 1]``, lower is better. Symmetric in ``A`` and ``B``. Fusing an image
    with itself gives 0; two constant sources give 0.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    _, nabf, den = _qabf_sums(fused, a, b)
    return nabf / den if den > 0 else 0.0


# -- SSIM, MS-SSIM, PSNR ---------------------------------------------------------------
def _ssim_terms(stats: np.ndarray, c1: float, c2: float) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the SSIM and CS maps of ``F`` with ``A`` and ``B`` from the eight local
    statistics ``(mu_f, mu_a, mu_b, f², a², b², fa, fb)``; overwrites ``stats``."""
    mu_f, mu_s = stats[:1], stats[1:3]
    mu_ff, mu_ss, mu_fs = mu_f * mu_f, mu_s * mu_s, mu_f * mu_s
    var_f, var_s, cov = stats[3:4], stats[4:6], stats[6:8]
    var_f -= mu_ff
    var_s -= mu_ss
    cov -= mu_fs
    # cs = (2 cov + C2) / (var_f + var_s + C2) and lum = (2 mu_f mu_s + C1) / (mu_f² +
    # mu_s² + C1), each operation as the plain formula evaluates it, in place.
    cs = 2 * cov
    cs += c2
    den = var_f + var_s
    den += c2
    cs /= den
    lum = 2 * mu_fs
    lum += c1
    den = mu_ff + mu_ss
    den += c1
    lum /= den
    cs_sum = cs.sum(axis=(1, 2))
    lum *= cs
    return lum.sum(axis=(1, 2)), cs_sum


def _source_pyramid(imgs: np.ndarray) -> tuple[Any, Any]:
    """SSIM(F, X) and CS(F, X) means, X = A and B, at every scale the image allows.

    Shared by SSIM (first scale) and MS-SSIM (all five); returns two ``(scales, 2)``
    float64 arrays. NumPy, float64, no torch: at each scale the eight local statistics
    (the three means, three squares, two products) are filtered together, strip by strip
    of rows (:func:`~benchbox.metrics.filters.valid_filter`, the 11-tap Gaussian of
    :mod:`benchbox.metrics.ssim`, valid positions only) and reduced to their sums
    (:func:`_ssim_terms`), and the image is halved by 2x2
    averaging (odd sizes drop the last row or column, as
    ``torch.nn.functional.avg_pool2d`` and MONAI do).
    """
    from benchbox.metrics.ssim import K1, K2, SIGMA, WINDOW

    g = gaussian_taps(WINDOW, SIGMA)
    c1, c2 = K1**2, K2**2
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(imgs.shape[1:]) >> scales >= WINDOW:
        scales += 1
    ssims, css = np.empty((scales, 2)), np.empty((scales, 2))
    for scale in range(scales):
        if scale:
            h, w = (imgs.shape[1] // 2) * 2, (imgs.shape[2] // 2) * 2
            imgs = imgs[:, :h, :w].reshape(3, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
        ssim_sum, cs_sum = np.zeros(2), np.zeros(2)
        rows, cols = imgs.shape[1] - WINDOW + 1, imgs.shape[2] - WINDOW + 1
        for start, stop in row_strips(rows):
            block = imgs[:, start : stop + WINDOW - 1]
            stack = np.empty((8, *block.shape[1:]))
            stack[:3] = block
            np.multiply(block, block, out=stack[3:6])
            np.multiply(block[:1], block[1:], out=stack[6:8])
            strip_ssim, strip_cs = _ssim_terms(valid_filter(stack, g, transposed=True), c1, c2)
            ssim_sum += strip_ssim
            cs_sum += strip_cs
        ssims[scale] = ssim_sum / (rows * cols)
        css[scale] = cs_sum / (rows * cols)
    return ssims, css


def _combine_np(ssims: np.ndarray, css: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """MS-SSIM of ``(scales, k)`` arrays: ``relu(l_M cs_M)^w_M · prod_{j<M} relu(cs_j)^w_j``,
    the contrast-structure mean ``cs_j`` at each scale and the full SSIM at the
    coarsest scale ``M``; the negative-value guard ``relu`` is the one of MONAI,
    TensorFlow and pytorch-msssim."""
    m = len(weights)
    factors = np.concatenate([np.maximum(css[: m - 1], 0), np.maximum(ssims[m - 1 : m], 0)])
    return np.prod(factors ** np.asarray(weights)[:, None], axis=0)


def compute_ssim(fused: Any, a: Any, b: Any) -> dict[str, float]:
    """Structural similarity (Wang et al. 2004) of the fused image with each source.

    ``SSIM(X, Y)`` is the mean over the valid window positions of
    ``(2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`` with an 11x11
    Gaussian window (σ = 1.5), ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``, ``L = 1`` and
    population (co)variances: :mod:`benchbox.metrics.ssim`, equal to
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``.

    Returns ``{"a": SSIM(F, A), "b": SSIM(F, B), "mean": (a + b) / 2, "sum": a + b}``;
    papers report either the sum (range ``[-2, 2]``) or the mean (``[-1, 1]``). Higher
    is better. Symmetric in ``A`` and ``B``.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``, at least 11x11.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    check_min_size("fused", f.shape, SSIM_MIN_SIZE, "SSIM")
    ssims, _ = memo("ssim-pyramid", (f, a_, b_), lambda: _source_pyramid(_stacked(f, a_, b_)))
    s_a, s_b = (float(v) for v in ssims[0])
    return {"a": s_a, "b": s_b, "mean": (s_a + s_b) / 2, "sum": s_a + s_b}


def compute_ms_ssim(fused: Any, a: Any, b: Any) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), mean over the two sources.

    ``(MS-SSIM(F, A) + MS-SSIM(F, B)) / 2`` with 5 scales and the standard weights
    ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``, each scale's SSIM as in
    :func:`compute_ssim` (see :func:`_combine_np`).

    Range ``[0, 1]``, higher is better. Symmetric in ``A`` and ``B``.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``, at least 176x176 (an 11x11
            window at 1/16 scale).
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    check_min_size("fused", f.shape, MS_SSIM_MIN_SIZE, "MS-SSIM")
    ssims, css = memo("ssim-pyramid", (f, a_, b_), lambda: _source_pyramid(_stacked(f, a_, b_)))
    return float(_combine_np(ssims, css, MS_SSIM_WEIGHTS).mean())


def compute_psnr(fused: Any, a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio of the fused image against both sources, in dB.

    ``PSNR = 10 log10(L² / MSE)`` with ``L = 1`` (the range of ``[0, 1]`` images) and
    ``MSE = (mean((F - A)²) + mean((F - B)²)) / 2``. The MSE is floored at ``1e-10``, so
    ``F = A = B`` gives 100 dB rather than infinity.

    Range ``[0, 100]`` dB, higher is better. Symmetric in ``A`` and ``B``.

    Args:
        fused: the fused image ``F``, 2D in ``[0, 1]``.
        a: source ``A``, same shape.
        b: source ``B``, same shape.
    """
    f, a_, b_ = _images(fused, a, b)
    d_a, d_b = f - a_, f - b_
    mse = (np.mean(np.multiply(d_a, d_a, out=d_a)) + np.mean(np.multiply(d_b, d_b, out=d_b))) / 2
    return float(10 * np.log10(1.0 / max(float(mse), PSNR_MSE_FLOOR)))
