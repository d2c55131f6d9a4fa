"""Built-in datasets: the synthetic CT/MRI phantom and readers for real images on disk."""

from __future__ import annotations

from benchbox import hookimpl
from benchbox.hookspecs import Register


@hookimpl
def register_datasets(register: Register) -> None:
    from benchbox.data.synthetic import SyntheticDataset

    register("synthetic", SyntheticDataset)
