"""Built-in datasets: the synthetic CT/MRI phantom and readers for real images on disk;
and the region presets of public label conventions (``--region brats``)."""

from __future__ import annotations

from benchbox import Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    from benchbox.data import SyntheticDataset

    register("synthetic", SyntheticDataset)

    # Readers of real images on disk (``--dataset NAME:PATH``); the generic code is core.
    from benchbox.data import open_cases, open_nifti, open_pairs

    register(
        "pairs", open_pairs, description="registered 2D image pairs: <dir>/<split>/<MODALITY>/"
    )
    register(
        "nifti", open_nifti, description="nnU-Net v2 raw dataset: imagesTr, labelsTr, dataset.json"
    )
    register("cases", open_cases, description="case folders of modality files, described by TOML")


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
