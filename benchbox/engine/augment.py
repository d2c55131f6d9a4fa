"""Data augmentation of training batches by the registered transforms (``--augment``).

The transforms run on whole batches, on the training device, after the batch is moved
there and before the forward pass; validation and test batches are never augmented.
Their random draws come from one ``torch.Generator`` seeded by the run seed, separate
from torch's global generator: the same seed gives the same augmentations, and
switching augmentation on changes neither the model's initialisation nor the shuffling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from benchbox import errors
from benchbox.hooks.registry import Registry

__all__ = ["SEED_OFFSET", "Augmenter", "build_transforms", "check_transforms"]

#: Offsets the augmentation generator's seed from the run seed, so its stream differs
#: from the global generator's (which seeds initialisation with the same number).
SEED_OFFSET = 0x5EED


class Augmenter:
    """Applies named transforms in order to a batch dict, drawing from its own generator.

    Args:
        transforms: ``(name, transform)`` pairs; a transform is ``f(batch, generator)``.
        seed: the run seed.
        device: the training device (the generator lives there).
    """

    def __init__(
        self, transforms: Sequence[tuple[str, Any]], seed: int, device: torch.device | str
    ) -> None:
        self.transforms = list(transforms)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed) + SEED_OFFSET)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        for name, transform in self.transforms:
            out = transform(batch, self.generator)
            for key in ("a", "b", "mask"):
                if key in batch and (
                    key not in out
                    or out[key].shape != batch[key].shape
                    or out[key].dtype != batch[key].dtype
                ):
                    raise errors.PluginError(
                        f"transform {name!r} returned {key!r} with another shape or dtype "
                        f"({tuple(batch[key].shape)} {batch[key].dtype} expected)"
                    )
            batch = out
        return batch


def check_transforms(registry: Registry, names: Sequence[str], options: dict[str, Any]) -> None:
    """Check the transforms named by ``--augment`` and their ``--augment-opt`` options
    without building them.

    Raises:
        UnknownTransformError: a name no plugin registered.
        ConfigError: an option for a transform that is not enabled, or a bad option.
    """
    for name, opts in options.items():
        if name not in names:
            raise errors.ConfigError(
                f"--augment-opt {name}.*: transform {name!r} is not enabled (--augment "
                f"{','.join(names) or 'none'})"
            )
        if not isinstance(opts, dict):
            raise errors.ConfigError(f"--augment-opt: options of {name!r} must be a table")
    for name in names:
        registry.get("transform", name).check_params(options.get(name, {}))


def build_transforms(
    registry: Registry, names: Sequence[str], options: dict[str, Any]
) -> list[tuple[str, Any]]:
    """Build the transforms named by ``--augment`` with their ``--augment-opt`` options
    (checked first by :func:`check_transforms`)."""
    check_transforms(registry, names, options)
    return [
        (name, registry.get("transform", name).build(**options.get(name, {}))) for name in names
    ]
