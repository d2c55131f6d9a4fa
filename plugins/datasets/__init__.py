"""Built-in datasets: the synthetic CT/MRI phantom and readers for real images on disk;
and the region presets of public label conventions (``--region brats``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchbox import ConfigError, Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    from benchbox.data import Synthetic3DDataset, SyntheticDataset

    register("synthetic", SyntheticDataset)
    register("synthetic3d", Synthetic3DDataset, dims=(2, 3))

    # Readers of real images on disk (``--dataset NAME:PATH``); the generic code is core.
    from benchbox.data import open_cases, open_nifti, open_pairs

    register(
        "pairs", open_pairs, description="registered 2D image pairs: <dir>/<split>/<MODALITY>/"
    )
    # Volumes serve 2D slices and 3D patches alike (a folder of 2D images: slices only).
    register(
        "nifti",
        open_nifti,
        description="nnU-Net v2 raw dataset: imagesTr, labelsTr, dataset.json",
        dims=(2, 3),
    )
    register(
        "cases",
        open_cases,
        description="case folders of modality files, described by TOML",
        dims=(2, 3),
    )


#: The built-in readers of real images on disk, which also open new images to predict.
_READERS = ("pairs", "nifti", "cases")


@hookimpl
def open_inputs(
    dataset: str,
    root: str | None,
    modalities: tuple[str, str],
    image_size: int,
    training: Mapping[str, Any],
    split: str,
    resample: bool,
) -> Any:
    """New images for ``benchbox predict`` in the built-in layouts: a folder of new
    pairs (or a pairs dataset's ``test/``), an nnU-Net ``imagesTs``, case folders."""
    if dataset not in _READERS:
        return None
    if not root:
        raise ConfigError(f"--dataset {dataset} needs a path: {dataset}:<folder or config>")
    from benchbox.data import open_inputs as open_reader

    return open_reader(dataset, root, modalities, image_size, training, split, resample)


def brats_regions() -> dict[str, tuple[int, ...]]:
    """BraTS tumour regions: whole tumour, tumour core, enhancing tumour.

    Over the labels 1 necrosis / non-enhancing core, 2 oedema, 3 non-enhancing tumour
    (BraTS 2013-2015 only) and 4 enhancing tumour (Menze et al. 2015).
    """
    return {
        "whole-tumour": (1, 2, 3, 4),
        "tumour-core": (1, 3, 4),
        "enhancing-tumour": (4,),
    }


@hookimpl
def register_regions(register: Register) -> None:
    register("brats", brats_regions)
