"""3D training data: random patches cut from the training volumes, some on foreground.

A 3D run (``--patch-size D,H,W``) trains on patches of its volume dataset's training
cases (:meth:`benchbox.data.base.BenchDataset.volumes`), as nnU-Net and MONAI's
``RandCropByPosNegLabel`` do:

* an epoch draws ``--patches-per-case`` patches from every training case;
* a share ``--oversample`` of them (nnU-Net: 1/3) is centred on a labelled voxel (any
  foreground class, drawn uniformly among at most :data:`MAX_FOREGROUND` voxels kept
  per case), the rest placed uniformly at random, each patch inside its volume;
* which patches are foreground is fixed by their index (the share holds for every case
  over the epochs), and where a patch lies comes from a random stream seeded by the run
  seed, the patch's index and how often it was drawn: the same seed gives the same
  patches, and each epoch new ones.

:func:`check_volumes` runs in the pre-flight of a 3D run, before any training: the
dataset must have volumes, every volume must hold the patch (after resampling), and
with oversampling every training case must hold a labelled voxel; each refusal is one
line naming the case. Volumes are read one at a time from the dataset (memory-mapped
cache files for the readers of real scans), and at most :data:`KEEP` are held at once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.config.volumes import format_triple
from benchbox.data.base import Volume

__all__ = ["KEEP", "MAX_FOREGROUND", "PatchSamples", "check_volumes", "is_foreground"]

#: Foreground voxels kept per case to centre patches on (a seeded subsample).
MAX_FOREGROUND = 20_000
#: Volumes held in memory at once while drawing patches.
KEEP = 2


def is_foreground(draw: int, share: float) -> bool:
    """Whether the ``draw``-th patch of a case is centred on foreground: exactly a share
    ``share`` of every case's patches are, spread evenly over its draws."""
    return math.floor((draw + 1) * share + 1e-9) > math.floor(draw * share + 1e-9)


def check_volumes(dataset: Any, config: RunConfig) -> PatchSamples:
    """The pre-flight of a 3D run on its built dataset; returns its training patches.

    Raises:
        DataError: no volumes (a dataset of 2D images), a volume smaller than the patch
            (after resampling), or, with ``--oversample`` above 0, a training case with
            no labelled voxel.
    """
    patch = config.patch
    assert patch is not None
    spacing = config.target_spacing
    resampled = f" after resampling to {format_triple(spacing)} mm" if spacing else ""
    train: Sequence[Volume] | None = None
    for split in dataset.splits:
        volumes = dataset.volumes(split)
        if volumes is None:
            raise errors.DataError(
                f"dataset {dataset.name!r} holds 2D images, not volumes: a 3D run "
                "(--patch-size) needs volumes"
            )
        if split == "train":
            train = volumes
        for volume in volumes:
            shape = tuple(int(n) for n in volume.a.shape)
            if any(p > n for p, n in zip(patch, shape, strict=True)):
                raise errors.DataError(
                    f"--patch-size {format_triple(patch)} is larger than case "
                    f"{volume.case_id!r} ({format_triple(shape)} voxels{resampled}); "
                    "choose a smaller patch"
                    + (" or a finer --spacing" if spacing else " or a --spacing")
                )
    assert train is not None
    return PatchSamples(
        train, patch, config.oversample, config.patches_per_case, config.seed, config.dataset
    )


class PatchSamples:
    """A map-style dataset of training patches (see the module docstring).

    Item ``i`` is a patch of case ``i % n_cases``: ``a``, ``b`` ``float32 (1, D, H, W)``,
    ``mask`` ``int64 (D, H, W)``, ``case_id`` (the case and the draw), ``case`` and
    ``spacing`` ``float64 (3,)``.

    Args:
        volumes: the training cases.
        patch: the patch ``(D, H, W)``.
        oversample: the share of patches centred on a labelled voxel.
        per_case: patches per case and epoch.
        seed: the run seed.
        dataset: the dataset's name, for messages.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        patch: Sequence[int],
        oversample: float,
        per_case: int,
        seed: int,
        dataset: str = "dataset",
    ) -> None:
        self.volumes, self.patch = volumes, tuple(int(n) for n in patch)
        self.oversample, self.per_case, self.seed = float(oversample), int(per_case), int(seed)
        self._draws: dict[int, int] = {}
        self._held: OrderedDict[int, Volume] = OrderedDict()
        self.foreground: list[np.ndarray] = []
        for index in range(len(volumes)):
            volume = self._volume(index)
            if volume.mask is None:
                raise errors.DataError(
                    f"dataset {dataset!r}: training case {volume.case_id!r} is unlabelled"
                )
            voxels = np.flatnonzero(np.asarray(volume.mask).ravel() > 0)
            if voxels.size == 0 and self.oversample > 0:
                raise errors.DataError(
                    f"dataset {dataset!r}: training case {volume.case_id!r} holds no labelled "
                    f"voxel, and --oversample {self.oversample:g} centres patches on them; set "
                    "--oversample 0 or leave the case out"
                )
            if voxels.size > MAX_FOREGROUND:
                rng = np.random.default_rng([self.seed, index])
                voxels = np.sort(rng.choice(voxels, MAX_FOREGROUND, replace=False))
            self.foreground.append(voxels)

    def __len__(self) -> int:
        return len(self.volumes) * self.per_case

    def _volume(self, index: int) -> Volume:
        if index in self._held:
            self._held.move_to_end(index)
            return self._held[index]
        volume = self.volumes[index]
        self._held[index] = volume
        while len(self._held) > KEEP:
            self._held.popitem(last=False)
        return volume

    def start(self, index: int, draw: int, rng: np.random.Generator) -> tuple[int, ...]:
        """The corner of the ``draw``-th patch of case ``index``."""
        volume = self._volume(index)
        shape = volume.a.shape
        fg = self.foreground[index]
        if fg.size and is_foreground(draw, self.oversample):
            centre = np.unravel_index(int(fg[rng.integers(fg.size)]), shape)
            return tuple(
                int(min(max(c - p // 2, 0), n - p))
                for c, p, n in zip(centre, self.patch, shape, strict=True)
            )
        return tuple(
            int(rng.integers(0, n - p + 1)) for p, n in zip(self.patch, shape, strict=True)
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        n = len(self.volumes)
        index, within = i % n, i // n
        times = self._draws.get(i, 0)
        self._draws[i] = times + 1
        draw = times * self.per_case + within  # this case's patch count over the epochs
        rng = np.random.default_rng([self.seed, i, times])
        corner = self.start(index, draw, rng)
        volume = self._volume(index)
        box = tuple(slice(c, c + p) for c, p in zip(corner, self.patch, strict=True))
        assert volume.mask is not None
        return {
            "a": torch.from_numpy(np.array(volume.a[box], dtype=np.float32)[None]),
            "b": torch.from_numpy(np.array(volume.b[box], dtype=np.float32)[None]),
            "mask": torch.from_numpy(np.array(volume.mask[box], dtype=np.int64)),
            "case_id": f"{volume.case_id}_p{draw:04d}",
            "case": volume.case_id,
            "spacing": torch.tensor(volume.spacing, dtype=torch.float64),
        }
