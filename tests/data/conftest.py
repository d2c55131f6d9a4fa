"""Tiny synthetic scans written to tmp_path, for the readers and the preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchbox.data.io import Geometry, write_image

SHAPE = (10, 40, 32)
#: A scan stored sideways: array axis 0 runs posterior, axis 1 inferior, axis 2 left.
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
GEOMETRY = Geometry(SHAPE, (2.5, 0.9, 1.1), (-20.0, 35.5, 10.25), DIRECTION)

CONFIG = """
name = "toy"
fuse = ["FLAIR", "T1c"]
label = "seg.nii.gz"
foreground = "brain.nii.gz"

[modalities]
FLAIR = "flair.nii.gz"
T1c = "t1c.nii.gz"

[labels]
0 = "background"
1 = "necrosis"
2 = "oedema"
4 = "enhancing"

[regions]
whole = "> 0"
core = [1, 4]

[split]
val_fraction = 0.25
test_fraction = 0.25
"""


def toy_case(seed: int, shape: tuple[int, int, int] = SHAPE) -> dict[str, np.ndarray]:
    """A head-like ellipsoid with a tumour (labels 1, 2, 4) in a few slices."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    d, h, w = shape
    brain = ((z - d / 2) / (0.6 * d)) ** 2 + ((y - h / 2) / (0.4 * h)) ** 2 + (
        (x - w / 2) / (0.4 * w)
    ) ** 2 < 1
    centre = np.array([d / 2, h / 2 + rng.integers(-3, 4), w / 2 + rng.integers(-3, 4)])
    r = np.sqrt((((np.stack([z, y, x], -1) - centre) * [2.5, 1, 1]) ** 2).sum(-1))
    label = np.zeros(shape, np.uint8)
    label[(r < 6) & brain] = 2
    label[(r < 4) & brain] = 4
    label[(r < 2) & brain] = 1
    flair = np.where(brain, 100 + 10 * rng.standard_normal(shape), 0).astype(np.float32)
    flair[label > 0] += 80
    t1c = np.where(brain, 50 + 5 * rng.standard_normal(shape), 0).astype(np.float32)
    t1c[label == 4] += 60
    return {"flair": flair, "t1c": t1c, "seg": label, "brain": brain.astype(np.uint8)}


@pytest.fixture
def make_cases(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``make_cases(n=4)`` writes ``n`` case folders and a config; returns both paths."""

    def make(n: int = 4, geometry: Geometry = GEOMETRY, config: str = CONFIG) -> tuple[Path, Path]:
        root = tmp_path / "cases"
        for i in range(n):
            folder = root / f"case{i:02d}"
            for key, arr in toy_case(i, geometry.shape).items():  # type: ignore[arg-type]
                write_image(arr, folder / f"{key}.nii.gz", reference=geometry)
        cfg = tmp_path / "toy.toml"
        cfg.write_text(config)
        return root, cfg

    return make
