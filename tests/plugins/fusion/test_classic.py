"""Classic fusion baselines against analytic cases and an independent NumPy/SciPy pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.fusion.classic import (
    BURT_ADELSON_KERNEL,
    LaplacianFusion,
    MaxFusion,
    MeanFusion,
    PCAFusion,
    laplacian_pyramid,
    pca_weights,
    pyramid_expand,
    pyramid_reduce,
    reconstruct,
    source_a,
    source_b,
    usable_levels,
)

NAMES = ("mean", "max", "laplacian", "pca", "source-a", "source-b")


def _pair(
    shape: tuple[int, ...] = (3, 1, 20, 27), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_registered_as_parameter_free_baselines() -> None:
    registry = create_registry()
    for name in NAMES:
        entry = registry.get("fusion", name)
        assert entry.info.get("baseline") is True
        assert entry.provider.plugin.endswith(":baselines")
        model = entry.build()
        assert isinstance(model, torch.nn.Module)
        assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_batched_in_range_differentiable_and_per_sample(name: str) -> None:
    model = create_registry().get("fusion", name).build()
    a, b = _pair()
    a.requires_grad_(True)
    b.requires_grad_(True)
    fused = model(a, b)
    assert fused.shape == a.shape and fused.dtype == torch.float32
    assert fused.min() >= 0 and fused.max() <= 1
    fused.sum().backward()
    grads = [g for g in (a.grad, b.grad) if g is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        one_by_one = torch.cat([model(a[i : i + 1], b[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(model(a, b), one_by_one)


def test_mean_of_two_constants() -> None:
    a, b = torch.full((2, 1, 8, 8), 0.2), torch.full((2, 1, 8, 8), 0.7)
    torch.testing.assert_close(MeanFusion()(a, b), torch.full((2, 1, 8, 8), 0.45))


def test_max_is_the_pixelwise_maximum_on_unit_range_images() -> None:
    a, b = _pair()
    assert torch.equal(MaxFusion()(a, b), torch.maximum(a, b))
    # What "maximum absolute value" means off [0, 1]: the larger magnitude, sign kept.
    signed = MaxFusion()(torch.tensor([-0.9, 0.3]), torch.tensor([0.5, -0.1]))
    assert torch.equal(signed, torch.tensor([0.0, 0.3]))  # -0.9 wins, then is clamped


def test_sources_pass_through() -> None:
    a, b = _pair()
    assert torch.equal(source_a()(a, b), a)
    assert torch.equal(source_b()(a, b), b)


# -- Laplacian pyramid -------------------------------------------------------------------
def _np_blur(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    # scipy's "mirror" is torch's "reflect": d c b | a b c d | c b a
    x = ndimage.correlate1d(x, taps, axis=0, mode="mirror")
    return ndimage.correlate1d(x, taps, axis=1, mode="mirror")


def _np_reduce(x: np.ndarray) -> np.ndarray:
    return _np_blur(x, np.array(BURT_ADELSON_KERNEL))[::2, ::2]


def _np_expand(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros((2 * x.shape[0], 2 * x.shape[1]))
    up[::2, ::2] = x
    return _np_blur(up, 2 * np.array(BURT_ADELSON_KERNEL))[: shape[0], : shape[1]]


@pytest.mark.parametrize("shape", [(16, 16), (21, 34), (9, 5)])
def test_reduce_and_expand_match_a_scipy_reference(shape: tuple[int, int]) -> None:
    x = np.random.default_rng(1).random(shape)
    t = torch.from_numpy(x)[None, None]
    low = pyramid_reduce(t)
    np.testing.assert_allclose(low[0, 0].numpy(), _np_reduce(x), atol=1e-12)
    np.testing.assert_allclose(
        pyramid_expand(low, shape)[0, 0].numpy(), _np_expand(_np_reduce(x), shape), atol=1e-12
    )


def test_the_kernel_is_burt_and_adelsons_and_keeps_constants() -> None:
    assert pytest.approx(np.array([1, 4, 6, 4, 1]) / 16) == BURT_ADELSON_KERNEL
    const = torch.full((1, 1, 13, 22), 0.3, dtype=torch.float64)
    torch.testing.assert_close(pyramid_expand(pyramid_reduce(const), (13, 22)), const)
    bands = laplacian_pyramid(const, 3)
    assert all(band.abs().max() < 1e-12 for band in bands[:-1])


@pytest.mark.parametrize(("shape", "levels"), [((32, 32), 4), ((37, 50), 3), ((64, 23), 6)])
def test_pyramid_reconstruction_is_exact(shape: tuple[int, int], levels: int) -> None:
    x = torch.rand(2, 1, *shape, dtype=torch.float64)
    pyramid = laplacian_pyramid(x, levels)
    assert len(pyramid) == usable_levels(*shape, levels) + 1
    torch.testing.assert_close(reconstruct(pyramid), x, atol=1e-12, rtol=0)


def test_levels_are_capped_to_what_the_image_allows() -> None:
    assert usable_levels(16, 16, 10) == 3  # 16 -> 8 -> 4 -> 2; a 2-px level is not reduced
    assert usable_levels(64, 64, 2) == 2
    assert usable_levels(2, 40, 4) == 0
    pyramid = laplacian_pyramid(torch.rand(1, 1, 16, 16), 10)
    assert [p.shape[-1] for p in pyramid] == [16, 8, 4, 2]


@pytest.mark.parametrize("levels", [1, 4, 8])
def test_laplacian_of_identical_images_is_the_image(levels: int) -> None:
    a, _ = _pair((2, 1, 30, 45))
    torch.testing.assert_close(LaplacianFusion(levels)(a, a), a, atol=1e-6, rtol=0)


def test_laplacian_keeps_the_stronger_detail() -> None:
    # b carries a sharp edge, a is flat: the edge must survive at full contrast, which
    # averaging halves.
    a = torch.full((1, 1, 32, 32), 0.5)
    b = torch.full((1, 1, 32, 32), 0.5)
    b[..., :, 16:] = 0.9
    edge = lambda x: float((x[0, 0, :, 17] - x[0, 0, :, 14]).mean())  # noqa: E731
    assert edge(MeanFusion()(a, b)) == pytest.approx(0.2, abs=1e-6)
    assert edge(LaplacianFusion(4)(a, b)) > 0.35


@pytest.mark.parametrize("levels", [0, -1, 2.5, True])
def test_bad_levels(levels: object) -> None:
    with pytest.raises(ConfigError, match="levels must be an integer >= 1"):
        LaplacianFusion(levels)  # type: ignore[arg-type]


# -- PCA -------------------------------------------------------------------------------
def _np_pca_weights(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, vectors = np.linalg.eigh(np.cov(np.stack([a.ravel(), b.ravel()])))
    v = np.abs(vectors[:, -1])
    return v / v.sum()


@pytest.mark.parametrize("relation", ["independent", "correlated", "anti", "scaled"])
def test_pca_weights_match_numpy_eigh(relation: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.random((24, 24))
    b = {
        "independent": rng.random((24, 24)) * 0.3,
        "correlated": 0.4 * a + 0.2 * rng.random((24, 24)),
        "anti": 1 - 0.5 * a + 0.1 * rng.random((24, 24)),
        "scaled": 0.25 * a,
    }[relation]
    w = pca_weights(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    np.testing.assert_allclose(w[0].numpy(), _np_pca_weights(a, b), atol=1e-9)


@pytest.mark.parametrize("other", ["zero", "constant"])
def test_pca_with_one_constant_source_returns_the_other(other: str) -> None:
    a, _ = _pair((2, 1, 16, 16))
    flat = torch.zeros_like(a) if other == "zero" else torch.full_like(a, 0.6)
    torch.testing.assert_close(PCAFusion()(a, flat), a)
    torch.testing.assert_close(PCAFusion()(flat, a), a)


def test_pca_degenerate_cases_weigh_equally() -> None:
    a = torch.full((1, 1, 8, 8), 0.2)
    b = torch.full((1, 1, 8, 8), 0.6)
    torch.testing.assert_close(pca_weights(a, b), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(PCAFusion()(a, b), torch.full_like(a, 0.4))
    x, _ = _pair((1, 1, 8, 8))
    torch.testing.assert_close(PCAFusion()(x, x), x)  # identical sources


def test_laplacian_runs_in_full_precision_under_autocast() -> None:
    a, b = _pair((1, 1, 32, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = LaplacianFusion(4)(a, b)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, LaplacianFusion(4)(a, b), atol=1e-6, rtol=0)
