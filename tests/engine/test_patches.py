"""3D training patches: inside their volume, a fixed share on foreground, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.data.base import Volume
from benchbox.engine.patches import PatchSamples, is_foreground


def _volume(case_id: str, shape=(12, 20, 24), lesion=True) -> Volume:
    rng = np.random.default_rng(len(case_id))
    mask = np.zeros(shape, np.int64)
    if lesion:
        mask[2:4, 15:18, 3:6] = 1  # a small lesion near a corner
    a = rng.random(shape, dtype=np.float32)
    return Volume(case_id, a, a[::-1].copy(), mask, (2.0, 1.0, 1.0))


@pytest.mark.parametrize("share", [0.0, 0.33, 0.5, 1.0])
def test_the_foreground_share_holds_for_every_case(share):
    draws = [is_foreground(d, share) for d in range(300)]
    assert abs(np.mean(draws) - share) < 0.01


def test_patches_lie_inside_and_foreground_ones_hold_the_lesion():
    volumes = [_volume("a"), _volume("bb")]
    patches = PatchSamples(volumes, (4, 8, 8), oversample=0.5, per_case=10, seed=0)
    assert len(patches) == 20
    with_lesion = 0
    for i in range(len(patches)):
        sample = patches[i]
        assert sample["a"].shape == sample["b"].shape == (1, 4, 8, 8)
        assert sample["mask"].shape == (4, 8, 8) and sample["mask"].dtype.is_floating_point is False
        assert sample["spacing"].tolist() == [2.0, 1.0, 1.0]
        with_lesion += int(sample["mask"].any())
    # Half the patches are centred on the lesion; a random one rarely meets it.
    assert with_lesion >= 10


def test_same_seed_same_patches_and_each_epoch_new_ones():
    def draw(seed: int, epochs: int = 1) -> list:
        patches = PatchSamples([_volume("a")], (4, 8, 8), 0.33, 3, seed)
        return [patches[i]["a"].sum().item() for _ in range(epochs) for i in range(len(patches))]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    first, second = draw(0, epochs=2)[:3], draw(0, epochs=2)[3:]
    assert first != second


def test_no_oversampling_accepts_a_volume_without_foreground():
    patches = PatchSamples([_volume("a", lesion=False)], (4, 8, 8), 0.0, 2, 0)
    assert not patches[0]["mask"].any()
