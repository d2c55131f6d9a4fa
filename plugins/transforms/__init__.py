"""Built-in augmentation transforms: flips, 90-degree rotations, affine, intensity.

Plain torch ops on whole batches on the training device. Why not torchio or kornia:
torchio transforms one 3D subject at a time on the CPU (a Python loop per sample), and
kornia would add a dependency for what ``F.affine_grid``/``F.grid_sample`` and
``torch.where`` already do batched, on any device, with per-sample parameters drawn
from the run's generator (``benchmarks/augment_speed.md`` measures the cost per step).
"""

from __future__ import annotations

from benchbox import hookimpl
from benchbox_plugins.transforms.geometric import affine, flip, rot90
from benchbox_plugins.transforms.intensity import gamma, intensity, noise


@hookimpl
def register_transforms(register):  # type: ignore[no-untyped-def]
    # Every built-in transform takes 2D and 3D batches.
    register("flip", flip, family="geometric", dims=(2, 3))
    register("rot90", rot90, family="geometric", dims=(2, 3))
    register("affine", affine, family="geometric", dims=(2, 3))
    register("intensity", intensity, family="intensity", dims=(2, 3))
    register("gamma", gamma, family="intensity", dims=(2, 3))
    register("noise", noise, family="intensity", dims=(2, 3))
