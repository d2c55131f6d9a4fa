"""Fusion metrics: hand-computed tiny images, known properties, and reference code.

The "reference" functions below are line-by-line transcriptions of the published
MATLAB/Python code each metric follows (Sheikh's ``vifp_mscale.m`` as CDDFuse ports
it, VIFB's ``metricsQabf.m``), written with full 2D ``scipy.signal.convolve2d`` as the
originals are, not with benchbox's separable filters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, signal, stats
from skimage.metrics import structural_similarity

from benchbox.errors import MetricInputError
from benchbox.metrics import fusion as fm
from benchbox.metrics.vif import vif_pixel

SOURCE_METRICS = (
    fm.compute_mi,
    fm.compute_scd,
    fm.compute_vif,
    fm.compute_qabf,
    fm.compute_nabf,
    fm.compute_ms_ssim,
    fm.compute_psnr,
)
SKIMAGE = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1}


def smooth(shape: tuple[int, int], seed: int, sigma: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random(shape), sigma)
    return (x - x.min()) / (x.max() - x.min())


@pytest.fixture(scope="module")
def triple() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = smooth((192, 192), 0), smooth((192, 192), 1, 4.0)
    return np.clip(0.6 * a + 0.5 * b - 0.05, 0, 1), a, b


# -- references ------------------------------------------------------------------------
def filter2_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(win, img, 'valid')``: empty when the window is the larger."""
    if img.shape[0] < win.shape[0] or img.shape[1] < win.shape[1]:
        return np.zeros((max(img.shape[0] - win.shape[0] + 1, 0),) * 2)
    return signal.convolve2d(img, np.rot90(win, 2), mode="valid")


def reference_vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """CDDFuse's ``compare_viff`` (from Sheikh's vifp_mscale.m), verbatim in substance."""
    sigma_nsq, eps = 2, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        sd = n / 5.0
        m = (n - 1.0) / 2.0
        y, x = np.ogrid[-m : m + 1, -m : m + 1]
        h = np.exp(-(x * x + y * y) / (2.0 * sd * sd))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        win = h / h.sum()
        if scale > 1:
            ref = filter2_valid(ref, win)[::2, ::2]
            dist = filter2_valid(dist, win)[::2, ::2]
        mu1 = filter2_valid(ref, win)
        mu2 = filter2_valid(dist, win)
        sigma1_sq = filter2_valid(ref * ref, win) - mu1 * mu1
        sigma2_sq = filter2_valid(dist * dist, win) - mu2 * mu2
        sigma12 = filter2_valid(ref * dist, win) - mu1 * mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0
        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12
        g[sigma1_sq < eps] = 0
        sv_sq[sigma1_sq < eps] = sigma2_sq[sigma1_sq < eps]
        sigma1_sq[sigma1_sq < eps] = 0
        g[sigma2_sq < eps] = 0
        sv_sq[sigma2_sq < eps] = 0
        sv_sq[g < 0] = sigma2_sq[g < 0]
        g[g < 0] = 0
        sv_sq[sv_sq <= eps] = eps
        num += np.sum(np.log10(1.0 + (g**2.0) * sigma1_sq / (sv_sq + sigma_nsq)))
        den += np.sum(np.log10(1.0 + sigma1_sq / sigma_nsq))
    return float(num / den)


def reference_qabf(
    f: np.ndarray, a: np.ndarray, b: np.ndarray, vifb: bool = False
) -> tuple[float, float]:
    """VIFB's metricsQabf.m, and Kumar's Nabf on the same terms.

    With ``vifb=False`` (benchbox's definition) two lines differ from VIFB's: equal
    strengths give the ratio 1 (VIFB: ``GAF(gA == gF) = gF``) and the orientation
    agreement is Petrovic's ``| |αA - αF| - π/2 | / (π/2)`` (VIFB: ``1 - |αA - αF| /
    (π/2)``, which scores the orientations π/2 and -π/2 as opposite).
    """

    def sobel(img):
        h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
        h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
        sx = signal.convolve2d(img, h3, mode="same")
        sy = signal.convolve2d(img, h1, mode="same")
        g = np.sqrt(sx * sx + sy * sy)
        alpha = np.zeros_like(img)
        alpha[sx == 0] = math.pi / 2
        alpha[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
        return g, alpha

    def q(g_x, a_x, g_f, a_f):
        gaf = np.zeros_like(g_x)
        gaf[g_x > g_f] = g_f[g_x > g_f] / g_x[g_x > g_f]
        gaf[g_x == g_f] = g_f[g_x == g_f] if vifb else 1.0
        gaf[g_x < g_f] = g_x[g_x < g_f] / g_f[g_x < g_f]
        if vifb:
            aaf = 1 - np.abs(a_x - a_f) / (math.pi / 2)
        else:
            aaf = np.abs(np.abs(a_x - a_f) - math.pi / 2) / (math.pi / 2)
        qg = 0.9994 / (1 + np.exp(-15 * (gaf - 0.5)))
        qa = 0.9879 / (1 + np.exp(-22 * (aaf - 0.8)))
        return qg * qa

    (ga, aa), (gb, ab), (gf, af) = sobel(a), sobel(b), sobel(f)
    qaf, qbf = q(ga, aa, gf, af), q(gb, ab, gf, af)
    qabf = np.sum(qaf * ga + qbf * gb) / np.sum(ga + gb)
    mask = (gf > ga) & (gf > gb)
    nabf = np.sum(mask * ((1 - qaf) * ga + (1 - qbf) * gb)) / np.sum(ga + gb)
    return float(qabf), float(nabf)


def reference_ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM from scipy filters: valid 11x11 Gaussian windows, 2x2 block means."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for scale in range(5):

        def f(z):
            return signal.correlate2d(z, win, mode="valid")

        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
        values.append(max((lum * cs).mean() if scale == 4 else cs.mean(), 0.0))
        h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
        x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.power(values, fm.MS_SSIM_WEIGHTS)))


# -- EN, SD, SF, AG --------------------------------------------------------------------
def test_en_hand_cases() -> None:
    assert fm.compute_en(np.full((8, 8), 0.3)) == 0.0
    half = np.zeros((4, 4))
    half[:, :2] = 1.0
    assert fm.compute_en(half) == pytest.approx(1.0)
    every_level = (np.arange(256).reshape(16, 16)) / 255.0
    assert fm.compute_en(every_level) == pytest.approx(8.0)


def test_en_matches_scipy_entropy_of_a_256_bin_histogram(triple) -> None:
    f = triple[0]
    counts, _ = np.histogram(f, bins=256, range=(0, 1))
    assert fm.compute_en(f) == pytest.approx(stats.entropy(counts, base=2), rel=1e-12)


def test_en_bins_an_8_bit_image_like_its_integer_histogram() -> None:
    rng = np.random.default_rng(3)
    img8 = rng.integers(0, 256, size=(32, 32))
    counts = np.bincount(img8.ravel(), minlength=256)
    assert fm.compute_en(img8 / 255.0) == pytest.approx(stats.entropy(counts, base=2))


def test_sd_hand_case() -> None:
    assert fm.compute_sd(np.array([[0.0, 1.0], [0.0, 1.0]])) == pytest.approx(0.5)
    assert fm.compute_sd(np.full((5, 5), 0.7)) == pytest.approx(0.0, abs=1e-15)


def test_sf_hand_cases() -> None:
    checker = np.array([[0.0, 1.0], [1.0, 0.0]])
    # RF^2 = mean(1, 1) = 1, CF^2 = mean(1, 1) = 1
    assert fm.compute_sf(checker) == pytest.approx(math.sqrt(2))
    ramp = np.array([[0.0, 0.5, 1.0]] * 3)
    # RF^2 = 0.25, CF^2 = 0
    assert fm.compute_sf(ramp) == pytest.approx(0.5)
    assert fm.compute_sf(np.full((6, 6), 0.2)) == 0.0


def test_ag_hand_cases() -> None:
    ramp = np.array([[0.0, 0.5, 1.0]] * 3)
    # Gx = 0.5 everywhere (one-sided and central differences agree), Gy = 0
    assert fm.compute_ag(ramp) == pytest.approx(math.sqrt(0.25 / 2))
    assert fm.compute_ag(np.full((6, 6), 0.9)) == 0.0


# -- MI, SCD ---------------------------------------------------------------------------
def test_mi_hand_cases() -> None:
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    independent = np.array([[0.0, 1.0], [0.0, 1.0]])
    # MI(A, A) = H(A) = 1 bit; A and this F are independent: MI = 0
    assert fm.compute_mi(a, a, a) == pytest.approx(2.0)
    assert fm.compute_mi(independent, a, a) == pytest.approx(0.0, abs=1e-12)
    assert fm.compute_mi(a, a, independent) == pytest.approx(1.0)


def test_mi_matches_a_joint_histogram_formula(triple) -> None:
    f, a, b = triple

    def mi(x, y):
        joint, _, _ = np.histogram2d(x.ravel(), y.ravel(), bins=256, range=[[0, 1], [0, 1]])
        p = joint / joint.sum()
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / (px @ py)[nz])).sum())

    assert fm.compute_mi(f, a, b) == pytest.approx(mi(a, f) + mi(b, f), rel=1e-9)


def test_scd_hand_case_and_properties(triple) -> None:
    f, a, b = triple
    expected = np.corrcoef((f - b).ravel(), a.ravel())[0, 1]
    expected += np.corrcoef((f - a).ravel(), b.ravel())[0, 1]
    assert fm.compute_scd(f, a, b) == pytest.approx(expected, rel=1e-12)
    # F = A + B: F - B = A and F - A = B, both correlations are 1
    assert fm.compute_scd(a / 2 + b / 2, a / 2, b / 2) == pytest.approx(2.0)
    assert fm.compute_scd(a, a, a) == 0.0  # all differences constant: r taken as 0


# -- VIF -------------------------------------------------------------------------------
def test_vif_matches_the_reference_code(triple) -> None:
    f, a, b = triple
    expected = reference_vifp(a * 255, f * 255) + reference_vifp(b * 255, f * 255)
    assert fm.compute_vif(f, a, b) == pytest.approx(expected, rel=1e-9)


def test_vif_small_image_matches_reference_where_coarse_scales_vanish() -> None:
    a, b = smooth((32, 40), 4), smooth((32, 40), 5)
    f = (a + b) / 2
    expected = reference_vifp(a * 255, f * 255) + reference_vifp(b * 255, f * 255)
    assert fm.compute_vif(f, a, b) == pytest.approx(expected, rel=1e-9)


def branchy_triple(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources and a fused image that reach every branch of VIF's masks: flat reference
    patches (σ1² < eps), a flat fused band (σ2² < eps), an inverted band (negative
    gain), plain noise; taller than a strip of rows, odd sizes."""
    a, b = smooth(shape, 7), np.random.default_rng(8).random(shape)
    a[:40, :30] = 0.3
    b[:40, :30] = 0.7
    f = 0.7 * a + 0.3 * b
    f[60:100] = 1 - a[60:100]
    f[:, -25:] = 0.6
    return np.clip(f, 0, 1), a, b


def test_vif_matches_the_reference_on_every_branch_of_its_masks() -> None:
    f, a, b = branchy_triple((141, 77))
    # the reference's masks at the first scale: each branch is taken somewhere
    win = np.outer(*(2 * [np.exp(-((np.arange(17) - 8.0) ** 2) / (2 * 3.4**2))]))
    win /= win.sum()
    mu1, mu2 = filter2_valid(a * 255, win), filter2_valid(f * 255, win)
    s1 = filter2_valid((a * 255) ** 2, win) - mu1 * mu1
    s2 = filter2_valid((f * 255) ** 2, win) - mu2 * mu2
    s12 = filter2_valid(a * f * 255**2, win) - mu1 * mu2
    assert (s1 < 1e-10).any() and (s2 < 1e-10).any() and (s12 < 0).any() and (s12 > 0).any()
    for x in (a, b):
        got = vif_pixel(np.stack([f, x]) * 255.0)[0]
        assert got == pytest.approx(reference_vifp(x * 255, f * 255), rel=1e-9, abs=1e-12)
    expected = reference_vifp(a * 255, f * 255) + reference_vifp(b * 255, f * 255)
    assert fm.compute_vif(f, a, b) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shape", [(256, 256), (97, 203), (200, 18)])
def test_vif_matches_the_reference_on_noise(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1])
    f, a, b = rng.random(shape), rng.random(shape), rng.random(shape)
    expected = reference_vifp(a * 255, f * 255) + reference_vifp(b * 255, f * 255)
    assert fm.compute_vif(f, a, b) == pytest.approx(expected, rel=1e-9)


def test_vif_of_an_image_with_itself_is_one_per_source(triple) -> None:
    a = triple[1]
    assert fm.compute_vif(a, a, a) == pytest.approx(2.0, abs=1e-6)
    flat = np.full((40, 40), 0.5)
    assert fm.compute_vif(flat, flat, flat) == 2.0  # no information to lose


# -- Qabf, Nabf ------------------------------------------------------------------------
def test_qabf_and_nabf_match_the_reference_code(triple) -> None:
    f, a, b = triple
    qabf, nabf = reference_qabf(f, a, b)
    assert fm.compute_qabf(f, a, b) == pytest.approx(qabf, rel=1e-10)
    assert fm.compute_nabf(f, a, b) == pytest.approx(nabf, rel=1e-10, abs=1e-15)


def test_qabf_and_nabf_match_the_reference_code_across_strips_of_rows() -> None:
    f, a, b = branchy_triple((141, 77))
    f = np.clip(f + 2 * (f - ndimage.gaussian_filter(f, 2)), 0, 1)  # artefacts: Nabf > 0
    qabf, nabf = reference_qabf(f, a, b)
    assert nabf > 0.01
    assert fm.compute_qabf(f, a, b) == pytest.approx(qabf, rel=1e-10)
    assert fm.compute_nabf(f, a, b) == pytest.approx(nabf, rel=1e-10)


def test_qabf_of_an_image_with_itself_is_the_constants_ceiling(triple) -> None:
    a = triple[1]
    ceiling = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert fm.compute_qabf(a, a, a) == pytest.approx(ceiling, rel=1e-12)
    assert ceiling == pytest.approx(0.97479, abs=1e-5)
    # VIFB's code puts gF where gA == gF instead of the ratio 1, and scores lower.
    assert reference_qabf(a, a, a, vifb=True)[0] < ceiling - 0.01
    assert fm.compute_nabf(a, a, a) == 0.0


def test_qabf_orientation_is_taken_modulo_pi() -> None:
    # Steep ramps down the rows, tilted slightly right in A and left in F: nearly the
    # same edge orientation, arctan gives ±(π/2 - δ). VIFB's formula calls them opposite.
    rows, cols = np.mgrid[0:24, 0:24]
    a = 0.02 * rows + 0.001 * cols + 0.1
    f = 0.02 * rows - 0.001 * cols + 0.1
    assert fm.compute_qabf(f, a, a) > 0.9
    assert reference_qabf(f, a, a, vifb=True)[0] < 0.5
    assert fm.compute_qabf(f, a, a) == pytest.approx(reference_qabf(f, a, a)[0], rel=1e-10)


def test_qabf_constant_sources_and_ranges(triple) -> None:
    black = np.zeros((16, 16))  # no edge anywhere, even with zero padding
    assert fm.compute_qabf(black, black, black) == 1.0
    assert fm.compute_nabf(black, black, black) == 0.0
    flat = np.full((16, 16), 0.4)  # zero padding ('same' convolution) sees border edges
    assert fm.compute_qabf(flat, flat, flat) == pytest.approx(reference_qabf(flat, flat, flat)[0])
    f, a, b = triple
    assert 0 <= fm.compute_qabf(f, a, b) <= 0.9748
    sharpened = np.clip(f + 2 * (f - ndimage.gaussian_filter(f, 2)), 0, 1)
    nabf = fm.compute_nabf(sharpened, a, b)
    assert 0 < nabf <= 1
    assert nabf > fm.compute_nabf(f, a, b)


# -- SSIM, MS-SSIM, PSNR ---------------------------------------------------------------
@pytest.mark.parametrize("shape", [(192, 192), (141, 77), (11, 300)])
def test_ssim_columns_match_skimage(shape: tuple[int, int]) -> None:
    # float64 throughout, so equal to skimage up to the order of the sums; (141, 77)
    # spans several strips of rows and reaches flat and inverted regions
    f, a, b = branchy_triple(shape) if shape[0] > 100 else (smooth(shape, s) for s in range(3))
    got = fm.compute_ssim(f, a, b)
    s_a = structural_similarity(f, a, **SKIMAGE)
    s_b = structural_similarity(f, b, **SKIMAGE)
    assert set(got) == {"a", "b", "mean", "sum"}
    assert got["a"] == pytest.approx(s_a, abs=1e-12)
    assert got["b"] == pytest.approx(s_b, abs=1e-12)
    assert got["mean"] == pytest.approx((s_a + s_b) / 2, abs=1e-12)
    assert got["sum"] == pytest.approx(s_a + s_b, abs=1e-12)


def test_ms_ssim_matches_a_scipy_reference(triple) -> None:
    f, a, b = triple
    expected = (reference_ms_ssim(f, a) + reference_ms_ssim(f, b)) / 2
    assert fm.compute_ms_ssim(f, a, b) == pytest.approx(expected, abs=1e-12)
    f, a, b = branchy_triple((181, 203))
    expected = (reference_ms_ssim(f, a) + reference_ms_ssim(f, b)) / 2
    assert fm.compute_ms_ssim(f, a, b) == pytest.approx(expected, abs=1e-12)


def test_ms_ssim_of_an_image_with_itself_is_one(triple) -> None:
    a = triple[1]
    assert fm.compute_ms_ssim(a, a, a) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_needs_176_pixels() -> None:
    img = np.zeros((175, 300))
    with pytest.raises(MetricInputError, match="MS-SSIM needs images of at least 176x176"):
        fm.compute_ms_ssim(img, img, img)


def test_psnr_hand_cases() -> None:
    f, a, b = np.full((4, 4), 0.5), np.zeros((4, 4)), np.ones((4, 4))
    # MSE = (0.25 + 0.25) / 2 -> 10 log10(4)
    assert fm.compute_psnr(f, a, b) == pytest.approx(10 * math.log10(4))
    assert fm.compute_psnr(a, a, a) == pytest.approx(100.0)


# -- shared properties -----------------------------------------------------------------
@pytest.mark.parametrize("metric", SOURCE_METRICS, ids=lambda m: m.__name__)
def test_symmetric_in_a_and_b(metric, triple) -> None:
    f, a, b = triple
    assert metric(f, a, b) == pytest.approx(metric(f, b, a), rel=1e-12, abs=1e-15)


def test_ssim_is_symmetric_in_a_and_b(triple) -> None:
    f, a, b = triple
    ab, ba = fm.compute_ssim(f, a, b), fm.compute_ssim(f, b, a)
    assert (ab["a"], ab["mean"]) == pytest.approx((ba["b"], ba["mean"]))


def test_fusing_an_image_with_itself(triple) -> None:
    a = triple[1]
    assert fm.compute_mi(a, a, a) == pytest.approx(2 * fm.compute_en(a))
    assert fm.compute_ssim(a, a, a) == pytest.approx({"a": 1, "b": 1, "mean": 1, "sum": 2})
    assert fm.compute_psnr(a, a, a) == 100.0


@pytest.mark.data
def test_real_fusion_pair_in_expected_ranges(data_root: Path) -> None:
    from benchbox.data.io import read_image

    folder = data_root / "fixtures" / "ifcnn"
    a = read_image(folder / "c01_1.tif").array / 255.0
    b = read_image(folder / "c01_2.tif").array / 255.0
    f = (a + b) / 2
    assert 0 < fm.compute_en(f) <= 8
    assert fm.compute_vif(f, a, b) == pytest.approx(
        reference_vifp(a * 255, f * 255) + reference_vifp(b * 255, f * 255), rel=1e-9
    )
    # Sobel sums in another order round differently; with the ratio and the orientation
    # both continuous that moves the result by ~1e-9 only.
    assert fm.compute_qabf(f, a, b) == pytest.approx(reference_qabf(f, a, b)[0], rel=1e-7)
    assert fm.compute_ssim(f, a, b)["a"] == pytest.approx(
        structural_similarity(f, a, **SKIMAGE), abs=1e-5
    )


# -- bad input -------------------------------------------------------------------------
def test_nan_is_named() -> None:
    img = np.zeros((16, 16))
    bad = img.copy()
    bad[3, 3] = np.nan
    with pytest.raises(MetricInputError, match=r"^a contains NaN"):
        fm.compute_psnr(img, bad, img)


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(MetricInputError, match=r"^b has shape \(16, 17\) but fused"):
        fm.compute_mi(np.zeros((16, 16)), np.zeros((16, 16)), np.zeros((16, 17)))


def test_0_255_image_is_refused_with_a_hint() -> None:
    img = np.full((16, 16), 200.0)
    with pytest.raises(MetricInputError, match=r"^image has values in.*divide 8-bit"):
        fm.compute_en(img)


def test_not_2d_is_refused() -> None:
    with pytest.raises(MetricInputError, match=r"^image must be a 2D image"):
        fm.compute_sd(np.zeros((1, 16, 16)))
