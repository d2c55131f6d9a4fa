"""The shared filters of the fusion metrics against scipy's full 2D filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from benchbox.metrics.filters import (
    STRIP_ROWS,
    gaussian_taps,
    row_strips,
    sobel_polar,
    valid_filter,
)

# Heights below, at and across strip boundaries, odd widths.
SHAPES = [(17, 23), (STRIP_ROWS + 10, 31), (3 * STRIP_ROWS + 5, 40), (2 * STRIP_ROWS + 16, 19)]


def fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', n, sigma)``, with its ``eps`` cut-off."""
    half = (n - 1) / 2
    y, x = np.ogrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


@pytest.mark.parametrize(("n", "sigma"), [(17, 17 / 5), (11, 1.5), (9, 9 / 5), (3, 3 / 5)])
def test_gaussian_taps_are_fspecial(n: int, sigma: float) -> None:
    g = gaussian_taps(n, sigma)
    np.testing.assert_allclose(np.outer(g, g), fspecial_gaussian(n, sigma), rtol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [17, 11, 5, 3])
def test_valid_filter_is_correlate2d_valid(shape: tuple[int, int], n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.random((3, *shape)) * 255
    g = gaussian_taps(n, n / 5)
    expected = np.stack([signal.correlate2d(xi, np.outer(g, g), mode="valid") for xi in x])
    got = valid_filter(x, g)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-10)
    # step=2 computes the kept outputs of filter-then-decimate (BLAS may order the
    # sums of a strided view differently: equal to rounding)
    np.testing.assert_allclose(valid_filter(x, g, step=2), got[:, ::2, ::2], rtol=1e-14)
    transposed = valid_filter(x, g, transposed=True)
    np.testing.assert_array_equal(np.swapaxes(transposed, -1, -2), got)


def test_valid_filter_of_an_image_smaller_than_the_window_is_empty() -> None:
    g = gaussian_taps(9, 1.8)
    assert valid_filter(np.ones((2, 8, 20)), g).shape == (2, 0, 12)
    assert valid_filter(np.ones((2, 20, 5)), g, step=2).shape == (2, 6, 0)


def test_valid_filter_of_a_constant_is_the_constant() -> None:
    out = valid_filter(np.full((1, 70, 30), 0.3), gaussian_taps(11, 1.5))
    np.testing.assert_allclose(out, 0.3, rtol=1e-14)


@pytest.mark.parametrize("rows", [0, 1, STRIP_ROWS, STRIP_ROWS + 1, 5 * STRIP_ROWS - 3])
def test_row_strips_cover_the_rows_once_in_order(rows: int) -> None:
    strips = list(row_strips(rows))
    covered = [r for start, stop in strips for r in range(start, stop)]
    assert covered == list(range(rows))
    assert all(0 < stop - start <= STRIP_ROWS for start, stop in strips)


def reference_sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VIFB's Sobel step: ``conv2(img, h, 'same')`` responses, ``atan(sy / sx)``."""
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    sx = signal.convolve2d(img, h3, mode="same")
    sy = signal.convolve2d(img, h1, mode="same")
    alpha = np.full(img.shape, math.pi / 2)
    alpha[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
    return np.sqrt(sx * sx + sy * sy), alpha


@pytest.mark.parametrize("shape", SHAPES)
def test_sobel_polar_matches_convolve2d_by_strips(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((2, *shape))
    x[1, :, : shape[1] // 2] = 0.5  # a flat half: sx = 0, orientation π/2
    strength = np.empty_like(x)
    angle = np.empty_like(x)
    for start, stop in row_strips(shape[0]):
        strength[:, start:stop], angle[:, start:stop] = sobel_polar(x, start, stop)
    whole = sobel_polar(x)
    np.testing.assert_array_equal(strength, whole[0])
    np.testing.assert_array_equal(angle, whole[1])
    for i in range(2):
        g, a = reference_sobel(x[i])
        np.testing.assert_allclose(strength[i], g, rtol=0, atol=1e-13)
        np.testing.assert_allclose(angle[i], a, rtol=0, atol=1e-12)
    assert np.all(angle[1, 1:-1, 1 : shape[1] // 2 - 1] == np.pi / 2)
