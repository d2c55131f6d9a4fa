"""Built-in datasets: the synthetic CT/MRI phantom and readers for real images on disk."""

from __future__ import annotations

from benchbox import hookimpl
from benchbox.hookspecs import Register


@hookimpl
def register_datasets(register: Register) -> None:
    from benchbox.data.synthetic import SyntheticDataset

    register("synthetic", SyntheticDataset)

    # Readers of real images on disk (``--dataset NAME:PATH``); the generic code is core.
    from benchbox.data.cases import open_cases
    from benchbox.data.nifti import open_nifti
    from benchbox.data.pairs import open_pairs

    register(
        "pairs", open_pairs, description="registered 2D image pairs: <dir>/<split>/<MODALITY>/"
    )
    register(
        "nifti", open_nifti, description="nnU-Net v2 raw dataset: imagesTr, labelsTr, dataset.json"
    )
    register("cases", open_cases, description="case folders of modality files, described by TOML")
