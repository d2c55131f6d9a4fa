"""Image filters shared by the fusion metrics: separable Gaussian windows, Sobel.

Each works on a stack ``(..., H, W)`` in one call, so that a metric filters all the
images and local statistics it needs at once (SSIM's eight, VIF's eight per scale, the
three Sobel pairs of Qabf) instead of looping over them in Python.

The metrics run them on strips of :data:`STRIP_ROWS` output rows (:func:`row_strips`)
and reduce each strip before the next: every temporary then stays small, in the CPU
cache and in memory the allocator reuses, where whole-image temporaries of a few MB
cost as much in page faults as in arithmetic. A strip's values are those of the whole
image (each output is the same dot product); only the order of the final sums changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["STRIP_ROWS", "gaussian_taps", "row_strips", "sobel_polar", "valid_filter"]

#: Output rows per strip (:func:`row_strips`): a strip of SSIM's or VIF's eight local
#: statistics of a 256-pixel-wide image is then about 0.5 MB.
STRIP_ROWS = 32


def row_strips(rows: int, size: int = STRIP_ROWS) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive strips of at most ``size`` of ``rows`` rows."""
    for start in range(0, rows, size):
        yield start, min(start + size, rows)


def gaussian_taps(n: int, sigma: float) -> np.ndarray:
    """The normalised 1D Gaussian of ``n`` taps whose outer product is the 2D window.

    ``outer(g, g)`` equals MATLAB's ``fspecial('gaussian', n, sigma)`` whenever the
    latter's cut-off (taps below ``eps * max`` set to 0) removes nothing, which holds
    for every window the fusion metrics use (at most 17 taps at ``sigma >= n / 5``).
    """
    x = np.arange(n) - (n - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _windows(x: np.ndarray, n: int, axis: int, step: int) -> np.ndarray:
    """A read-only view ``(..., out, ..., n)``: every ``step``-th window of ``n``
    samples along ``axis`` (-1 or -2), the window as the last axis."""
    shape = list(x.shape)
    strides = list(x.strides)
    length = shape[axis]
    shape[axis] = (length - n) // step + 1
    strides[axis] = x.strides[axis] * step
    if x.flags.c_contiguous:  # the same view, without as_strided's Python overhead
        return np.ndarray((*shape, n), x.dtype, x, 0, (*strides, x.strides[axis]))
    return as_strided(x, (*shape, n), (*strides, x.strides[axis]), writeable=False, subok=False)


def _row_windows(x: np.ndarray, start: int, stop: int, n: int, step: int) -> np.ndarray:
    """``_windows(x[..., start:stop, :], n, -2, step)``, straight from ``x``'s buffer
    when ``x`` is contiguous (its row slice is not, for a stack)."""
    if not x.flags.c_contiguous:
        return _windows(x[..., start:stop, :], n, -2, step)
    shape = (*x.shape[:-2], (stop - start - n) // step + 1, x.shape[-1], n)
    strides = (*x.strides[:-2], x.strides[-2] * step, x.strides[-1], x.strides[-2])
    return np.ndarray(shape, x.dtype, x, start * x.strides[-2], strides)


def valid_filter(
    x: np.ndarray, g: np.ndarray, step: int = 1, transposed: bool = False
) -> np.ndarray:
    """'Valid' correlation of the last two axes of ``x`` with the window ``outer(g, g)``.

    MATLAB's ``filter2(outer(g, g), x, 'valid')`` (``scipy.signal.correlate2d(...,
    mode='valid')``) for every image of the stack, done as two 1D passes down the
    columns: each is a matrix product of a sliding-window view with ``g`` (no padding,
    no copy of the windows) whose windows run across rows, the layout BLAS takes as a
    matrix-vector product; between the two passes the strip is transposed. With
    ``step = 2`` only every second output row and column is computed, which is
    ``valid_filter(x, g)[..., ::2, ::2]`` (filter, then decimate) at a quarter of the
    cost.

    Args:
        x: float array ``(..., H, W)``.
        g: the 1D taps, length ``n``.
        step: keep every ``step``-th output row and column, from the first.
        transposed: return the result with its last two axes swapped (as it is
            computed), for callers that only reduce it.

    Returns:
        ``(..., ceil((H - n + 1) / step), ceil((W - n + 1) / step))``, or those two
        axes swapped; empty along an axis shorter than ``n``.
    """
    n = g.size
    h, w = x.shape[-2:]
    rows, cols = -(-max(h - n + 1, 0) // step), -(-max(w - n + 1, 0) // step)
    if rows == 0 or cols == 0:
        return np.zeros((*x.shape[:-2], *((cols, rows) if transposed else (rows, cols))))
    out = np.empty((*x.shape[:-2], cols, rows))
    for start, stop in row_strips(rows):
        windows = _row_windows(x, start * step, (stop - 1) * step + n, n, step)
        y = np.ascontiguousarray(np.swapaxes(windows @ g, -1, -2))
        out[..., start:stop] = _windows(y, n, -2, step) @ g
    return out if transposed else np.ascontiguousarray(np.swapaxes(out, -1, -2))


def sobel_polar(
    x: np.ndarray, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sobel edge strength and orientation of each image of a stack ``(..., H, W)``.

    The horizontal and vertical responses ``sx``, ``sy`` of the 3x3 Sobel kernels with
    zero padding (MATLAB's ``conv2(x, h, 'same')``), as correlations: both responses
    change sign together under the flip, which leaves the strength and the orientation
    unchanged. Returns the strength ``sqrt(sx² + sy²)`` and the orientation
    ``arctan(sy / sx)``, ``π/2`` where ``sx = 0``, of the rows ``start:stop``.
    """
    h = x.shape[-2]
    stop = h if stop is None else stop
    # The rows start - 1 .. stop, zero outside the image, and a zero column each side.
    p = np.zeros((*x.shape[:-2], stop - start + 2, x.shape[-1] + 2))
    lo, hi = max(start - 1, 0), min(stop + 1, h)
    p[..., lo - start + 1 : hi - start + 1, 1:-1] = x[..., lo:hi, :]
    rows = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]  # [1, 2, 1] down columns
    sx = rows[..., 2:] - rows[..., :-2]
    cols = p[..., :-2] + 2 * p[..., 1:-1] + p[..., 2:]
    sy = cols[..., :-2, :] - cols[..., 2:, :]
    strength = np.sqrt(sx * sx + sy * sy)
    nz = sx != 0
    angle = np.divide(sy, sx, out=np.zeros_like(sy), where=nz)
    # arctan of every pixel, then π/2 where sx = 0: a masked arctan would take NumPy's
    # scalar path, whose last bit can differ from its vectorised one.
    np.arctan(angle, out=angle)
    np.copyto(angle, np.pi / 2, where=~nz)
    return strength, angle
