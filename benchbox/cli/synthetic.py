"""``benchbox synthetic OUT``: write the synthetic phantom to disk as NIfTI and PNG."""

from __future__ import annotations

import typer
from rich.markup import escape

from benchbox.cli._common import console

__all__ = ["synthetic"]


def synthetic(
    out: str = typer.Argument(..., help="Folder to write nifti/ and png/ into."),
    image_size: int = typer.Option(128, "--image-size", help="Side of the square slices."),
    n_train: int = typer.Option(32, "--n-train"),
    n_val: int = typer.Option(8, "--n-val"),
    n_test: int = typer.Option(16, "--n-test"),
    seed: int = typer.Option(0, "--seed", help="Dataset seed (the runs use 0 by default)."),
    misregistration: float = typer.Option(0.0, "--misregistration", help="Max MRI shift, px."),
    formats: str = typer.Option("nifti,png", "--format", help="nifti, png or both."),
) -> None:
    """Save a generated synthetic CT/MRI set: nnU-Net layout (NIfTI) and pairs layout (PNG)."""
    from benchbox.data.synthetic import SyntheticDataset, export

    dataset = SyntheticDataset(
        image_size=image_size,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        seed=seed,
        misregistration=misregistration,
    )
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    path = export(dataset, out, chosen)
    for fmt in chosen:
        console.print(f"wrote {escape(str(path / fmt))}")
    if "nifti" in chosen:
        console.print(
            f"read it back with: benchbox run --dataset nifti:{escape(str(path / 'nifti'))}"
        )
    if "png" in chosen:
        console.print(f"or as pairs:      benchbox run --dataset pairs:{escape(str(path / 'png'))}")
