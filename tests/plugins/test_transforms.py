"""The built-in transforms' own behaviour, and --augment's options (the contract of every
registered transform is checked by benchbox.testing, in tests/plugins/test_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from benchbox import errors
from benchbox.engine.augment import Augmenter, build_transforms
from benchbox.hooks.manager import get_registry

ENTRIES = get_registry().list("transform")
NAMES = [e.name for e in ENTRIES]


def _batch(seed: int = 0, n: int = 6, h: int = 32, w: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, h, w, dtype=torch.int64)
    mask[:, 4:14, 6:20] = 1
    mask[:, 18:28, 10:16] = 3  # labels {0, 1, 3}: a gap that must survive
    return {
        "a": torch.rand(n, 1, h, w, generator=g),
        "b": torch.rand(n, 1, h, w, generator=g),
        "mask": mask,
        "case_id": [f"c{i}" for i in range(n)],
    }


def _run(transform, batch, seed):
    return transform(dict(batch), torch.Generator().manual_seed(seed))


def test_the_built_ins_are_registered():
    assert {"flip", "rot90", "affine", "intensity", "gamma", "noise"} <= set(NAMES)


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_the_built_ins_draw_at_their_default_options(entry):
    # The contract (tests/plugins/test_contracts.py) allows a transform without random
    # draws; every built-in has some: another seed, another output.
    batch = _batch()
    out, other = (_run(entry.build(), batch, seed) for seed in (0, 1))
    assert not torch.equal(out["a"], other["a"])


def test_p_zero_is_the_identity_and_rot90_keeps_non_square_shapes():
    reg = get_registry()
    batch = _batch()
    for entry in ENTRIES:
        if entry.accepts("p"):
            out = _run(entry.build(p=0.0), batch, 0)
            assert all(torch.equal(out[k], batch[k]) for k in ("a", "b", "mask")), entry.name
    wide = _batch(h=32, w=64)
    out = _run(reg.get("transform", "rot90").build(p=1.0), wide, 0)
    assert torch.equal(out["a"], torch.rot90(wide["a"], 2, dims=(-2, -1)))


def test_flip_and_rot90_are_exact_permutations():
    batch = _batch(n=64)
    out = _run(get_registry().get("transform", "rot90").build(p=1.0), batch, 0)
    for i in range(64):
        k = next(
            k
            for k in (1, 2, 3)
            if torch.equal(out["a"][i], torch.rot90(batch["a"][i], k, (-2, -1)))
        )
        assert torch.equal(out["mask"][i], torch.rot90(batch["mask"][i], k, (-2, -1)))
        assert torch.equal(out["b"][i], torch.rot90(batch["b"][i], k, (-2, -1)))


def test_affine_with_zero_ranges_is_the_identity_up_to_rounding():
    batch = _batch()
    t = get_registry().get("transform", "affine").build(p=1.0, degrees=0, scale=[1, 1], translate=0)
    out = _run(t, batch, 0)
    assert torch.allclose(out["a"], batch["a"], atol=1e-5)
    assert torch.equal(out["mask"], batch["mask"])


def test_gamma_keeps_zero_and_one_and_noise_std():
    reg = get_registry()
    x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3).expand(4, 1, 1, 3).contiguous()
    out = _run(reg.get("transform", "gamma").build(p=1.0, gamma=[2, 2]), {"a": x, "b": x}, 0)
    assert torch.allclose(out["a"], x**2)
    flat = torch.full((8, 1, 64, 64), 0.5)
    out = _run(reg.get("transform", "noise").build(p=1.0, std=0.1), {"a": flat, "b": flat}, 0)
    assert 0.0 < float((out["a"] - 0.5).std()) < 0.1


def test_augmenter_is_seeded_and_checks_its_transforms():
    reg = get_registry()
    transforms = build_transforms(reg, ["flip", "gamma"], {"gamma": {"p": 1.0}})
    a1 = Augmenter(transforms, seed=7, device="cpu")(_batch())
    a2 = Augmenter(transforms, seed=7, device="cpu")(_batch())
    a3 = Augmenter(transforms, seed=8, device="cpu")(_batch())
    assert torch.equal(a1["a"], a2["a"]) and not torch.equal(a1["a"], a3["a"])

    def shrink(batch, generator):
        return {**batch, "a": batch["a"][:, :, :8]}

    with pytest.raises(errors.PluginError, match="transform 'shrink' returned 'a'"):
        Augmenter([("shrink", shrink)], 0, "cpu")(_batch())


@pytest.mark.parametrize(
    ("names", "opts", "error", "match"),
    [
        (["flip"], {"affine": {"degrees": 5}}, errors.ConfigError, "'affine' is not enabled"),
        (["flipp"], {}, errors.UnknownTransformError, "did you mean 'flip'"),
        (["affine"], {"affine": {"degres": 5}}, errors.ConfigError, "did you mean degrees"),
        (["gamma"], {"gamma": {"gamma": [2, 1]}}, errors.ConfigError, "min <= max"),
        (["flip"], {"flip": {"p": 2}}, errors.ConfigError, r"p must be in \[0, 1\]"),
    ],
)
def test_bad_augment_options_are_one_clear_error(names, opts, error, match):
    with pytest.raises(error, match=match):
        build_transforms(get_registry(), names, opts)
