"""A 3D variant of the synthetic CT/MRI head phantom: whole volumes with lesion masks.

The 2D phantom (:mod:`benchbox.data.synthetic`) draws each slice on its own; here every
structure is a solid, so a lesion spans several slices and a 3D network can use the
context across them. The tissues and their intensities are the 2D phantom's:

* the head is an ellipsoid holding a scalp, a skull (bright in CT, dark in MRI), grey
  matter, white matter with folded edges (contrast only in MRI) and two ventricles;
* one to three lesions per case (none in a share ``lesion_free`` of the cases, 0 by
  default: a 3D run centres a share of its patches on lesions), smooth star-shaped
  blobs inside the brain: bright in MRI and faintly hypodense in CT; a share
  ``calcified`` of them holds a core bright in CT and dark in MRI, part of the lesion,
  so neither modality alone outlines it;
* acquisition: a [1, 2, 1] / 4 blur along each axis, a smooth multiplicative bias field
  and Rician noise in MRI, Gaussian noise in CT.

Each case is drawn from its own random stream, seeded by ``(seed, split, index)``, so a
case does not depend on how many others are generated. The volumes span a field of view
of ``fov_mm`` in-plane and ``0.75 * fov_mm`` in depth, on ``depth x image_size x
image_size`` voxels, or on the grid of a given voxel ``spacing`` (mm, ``z, y, x``): the
phantom is drawn at the resolution asked for, nothing is resampled. ``split()`` serves
the axial slices (a 2D run on the same cases), ``volumes()`` the cases (a 3D run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from benchbox.data.base import BenchDataset, Sample, Volume
from benchbox.data.io import Geometry
from benchbox.errors import ConfigError

__all__ = ["Synthetic3DDataset", "draw_volume"]

_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
#: Depth of the field of view as a share of its in-plane side.
DEPTH_SHARE = 0.75


def _blur(x: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur along every axis (edges repeated)."""
    for axis in range(x.ndim):
        p = np.moveaxis(
            np.pad(np.moveaxis(x, axis, 0), [(1, 1)] + [(0, 0)] * (x.ndim - 1), "edge"), 0, axis
        )
        lo = [slice(None)] * x.ndim
        mid, hi = list(lo), list(lo)
        lo[axis], mid[axis], hi[axis] = slice(None, -2), slice(1, -1), slice(2, None)
        x = 0.25 * p[tuple(lo)] + 0.5 * p[tuple(mid)] + 0.25 * p[tuple(hi)]
    return x


def _radius(
    grid: tuple[np.ndarray, ...], centre: Sequence[float], axes: Sequence[float]
) -> np.ndarray:
    """The ellipsoidal radius of every voxel (1 on the surface)."""
    return np.sqrt(sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes, strict=True)))


def _blob(
    rng: np.random.Generator, grid: tuple[np.ndarray, ...], centre: Sequence[float], size: float
) -> np.ndarray:
    """A smooth random star-shaped solid around ``centre`` (radius modulated by a few
    harmonics of the direction)."""
    axes = size * rng.uniform(0.75, 1.25, size=3)
    z, y, x = (g - c for g, c in zip(grid, centre, strict=True))
    r = np.sqrt((z / axes[0]) ** 2 + (y / axes[1]) ** 2 + (x / axes[2]) ** 2) + 1e-6
    theta, phi = np.arccos(np.clip(z / axes[0] / r, -1, 1)), np.arctan2(y, x)
    amps, phases = rng.uniform(0, 0.12, size=3), rng.uniform(0, 2 * np.pi, size=3)
    edge = 1 + amps[0] * np.cos(2 * phi + phases[0]) + amps[1] * np.cos(3 * theta + phases[1])
    edge += amps[2] * np.cos(2 * theta + 3 * phi + phases[2])
    return r < edge


def draw_volume(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    lesion_free: float = 0.0,
    calcified: float = 0.35,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one case: CT and MRI ``float32 (D, H, W)`` in ``[0, 1]``, mask ``uint8``."""
    axes = [(np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1 for n in shape]
    grid = np.meshgrid(*axes, indexing="ij")
    j = lambda: rng.uniform(0.95, 1.05)  # noqa: E731  per-case intensity jitter

    centre = [float(rng.uniform(-0.05, 0.05)) for _ in range(3)]
    head = _radius(
        grid, centre, (rng.uniform(0.86, 0.94), rng.uniform(0.84, 0.92), rng.uniform(0.72, 0.82))
    )
    scalp_in = 1 - rng.uniform(0.03, 0.045)
    brain_r = scalp_in - rng.uniform(0.06, 0.09)
    phi = np.arctan2(grid[1] - centre[1], grid[2] - centre[2])
    folds = 1 + 0.06 * np.sin(int(rng.integers(6, 11)) * phi + rng.uniform(0, 2 * np.pi))
    brain = head < brain_r
    wm = head < brain_r * rng.uniform(0.68, 0.8) * folds
    vent = np.zeros(shape, dtype=bool)
    gap = rng.uniform(0.06, 0.1)
    for side in (-1, 1):
        where = (
            centre[0] + rng.uniform(-0.05, 0.1),
            centre[1] + rng.uniform(-0.08, 0.02),
            centre[2] + side * gap,
        )
        vent |= (
            _radius(
                grid,
                where,
                (rng.uniform(0.2, 0.3), rng.uniform(0.14, 0.24), rng.uniform(0.05, 0.09)),
            )
            < 1
        )

    ct = np.zeros(shape, np.float32)
    mr = np.zeros(shape, np.float32)
    for region, c_val, m_val in (
        (head < 1, 0.22, 0.55),
        (head < scalp_in, 0.95, 0.06),
        (brain, 0.40, 0.50),
        (wm, 0.37, 0.34),
        (vent, 0.32, 0.12),
    ):
        ct[region], mr[region] = c_val * j(), m_val * j()

    mask = np.zeros(shape, np.uint8)
    count = 0 if rng.random() < lesion_free else int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    for _ in range(count):
        size = rng.uniform(0.14, 0.28)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        spot = [
            float(c + d * rng.uniform(0, 0.6) * (brain_r * 0.8 - size))
            for c, d in zip(centre, direction, strict=True)
        ]
        lesion = _blob(rng, grid, spot, size) & brain
        if not lesion.any():
            continue
        mask[lesion] = 1
        ct[lesion] -= rng.uniform(0.0, 0.03)
        mr[lesion] = 0.85 * j()
        if rng.random() < calcified:
            off = [w + rng.uniform(0, 0.3 * size) for w in spot]
            core = _blob(rng, grid, off, size * rng.uniform(0.35, 0.6)) & lesion
            ct[core], mr[core] = 0.85 * j(), 0.10 * j()

    ct, mr = _blur(ct), _blur(mr)
    c = rng.normal(0, 1, size=5)
    z, y, x = grid
    bias = 1 + 0.12 * (
        c[0] * x + c[1] * y + c[2] * z + 0.5 * c[3] * x * y + 0.5 * c[4] * (x * x - z * z)
    )
    mr = mr * np.clip(bias, 0.6, 1.4)
    noise = rng.standard_normal((3, *shape), dtype=np.float32)
    ct = ct + 0.02 * noise[0]
    mr = np.sqrt((mr + 0.025 * noise[1]) ** 2 + (0.025 * noise[2]) ** 2)
    return (
        np.clip(ct, 0, 1).astype(np.float32),
        np.clip(mr, 0, 1).astype(np.float32),
        mask,
    )


class _Slices:
    """The axial slices of a split's volumes, as 2D samples (tensors made on access)."""

    def __init__(self, volumes: Sequence[Volume]) -> None:
        self.volumes = volumes
        self.index = [(v, z) for v in range(len(volumes)) for z in range(volumes[v].a.shape[0])]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Sample:
        import torch

        v, z = self.index[i]
        volume = self.volumes[v]
        assert volume.mask is not None
        return {
            "a": torch.from_numpy(volume.a[z][None].copy()),
            "b": torch.from_numpy(volume.b[z][None].copy()),
            "mask": torch.from_numpy(volume.mask[z].astype(np.int64)),
            "case_id": f"{volume.case_id}_z{z:03d}",
            "case": volume.case_id,
            "slice": z,
            "spacing": torch.tensor(volume.spacing[1:], dtype=torch.float64),
        }


class Synthetic3DDataset(BenchDataset):
    """Synthetic 3D CT/MRI head phantom with lesion masks; embedded, no download."""

    name = "synthetic3d"
    modalities = ("CT", "MRI")
    labels: Mapping[int, str] = MappingProxyType({0: "background", 1: "lesion"})

    def __init__(
        self,
        image_size: int = 64,
        depth: int = 48,
        n_train: int = 8,
        n_val: int = 2,
        n_test: int = 4,
        seed: int = 0,
        lesion_free: float = 0.0,
        calcified: float = 0.35,
        fov_mm: float = 220.0,
        spacing: Any = None,
    ) -> None:
        counts = {"train": n_train, "val": n_val, "test": n_test}
        for key, value, low in (("image_size", image_size, 16), ("depth", depth, 8)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"synthetic3d: {key} must be an integer >= {low}, got {value!r}")
        for key, value in counts.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"synthetic3d: n_{key} must be an integer >= 0, got {value!r}")
        for key, share in (("lesion_free", lesion_free), ("calcified", calcified)):
            if not 0 <= share <= 1:
                raise ConfigError(f"synthetic3d: {key} must be within [0, 1], got {share!r}")
        if not fov_mm > 0:
            raise ConfigError(f"synthetic3d: fov_mm must be > 0, got {fov_mm!r}")
        fov = (fov_mm * DEPTH_SHARE, fov_mm, fov_mm)
        if spacing is None:
            self.shape = (depth, image_size, image_size)
        else:
            if len(spacing) != 3 or not all(float(s) > 0 for s in spacing):
                raise ConfigError(
                    f"synthetic3d: spacing must be three numbers > 0, got {spacing!r}"
                )
            self.shape = tuple(
                max(8, round(f / float(s))) for f, s in zip(fov, spacing, strict=True)
            )  # type: ignore[assignment]
        self.spacing = tuple(f / n for f, n in zip(fov, self.shape, strict=True))
        self.counts, self.seed, self.fov_mm = counts, seed, fov_mm
        self.params = {"lesion_free": lesion_free, "calcified": calcified}
        self._volumes: dict[str, list[Volume]] = {}
        # The phantom's own grid (origin 0, axis-aligned): `benchbox predict` writes its
        # NIfTI files with it, as it writes a scan's with the scan's geometry.
        self._geometry = Geometry(
            tuple(self.shape), tuple(self.spacing), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel())
        )

    def volumes(self, split: str) -> Sequence[Volume]:
        self.check_split(split)
        if split not in self._volumes:
            cases = []
            for i in range(self.counts[split]):
                rng = np.random.Generator(
                    np.random.PCG64(np.random.SeedSequence([self.seed, _SPLIT_CODES[split], i, 3]))
                )
                ct, mr, mask = draw_volume(rng, self.shape, **self.params)
                volume = Volume(
                    f"{split}-{i:03d}",
                    ct,
                    mr,
                    mask.astype(np.int64),
                    self.spacing,  # type: ignore[arg-type]
                    reference=self._geometry,
                )
                cases.append(volume)
            self._volumes[split] = cases
        return self._volumes[split]

    def split(self, name: str) -> Sequence[Sample]:
        return _Slices(self.volumes(name))  # type: ignore[return-value]

    def has_foreground(self, split: str) -> bool | None:
        return any(bool(v.mask is not None and v.mask.any()) for v in self.volumes(split))

    def config(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing),
            "seed": self.seed,
            "fov_mm": self.fov_mm,
            **{f"n_{k}": v for k, v in self.counts.items()},
            **self.params,
        }
