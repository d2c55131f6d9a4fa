"""Validation-only screening of fusion recipes (results: benchmarks/results/fusion_recipe.md).

Two sources of validation numbers, never the test split:

* ``baselines``: the parameter-free fusions (``max``, ``laplacian``, ``mean``, ...) scored
  on the ``val`` split of a dataset, exactly as a run's validation scores a learned
  model (:func:`benchbox.engine.selection.validate`, every val pair);
* ``runs``: the val metrics of trained runs at their selected epoch, read from each
  run's ``metrics.json`` (its ``curve``). The test summary in that file is not read.

Usage (from the repository root)::

    python benchmarks/fusion_recipe.py baselines --dataset pairs:../shared/data/aanlib/CT-MRI
    python benchmarks/fusion_recipe.py runs RUN_FOLDER [RUN_FOLDER ...]

Both print one markdown table row per method or run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

COLUMNS = ("qabf", "vif", "ssim_mean", "nabf", "mi", "ms-ssim")


def _row(label: str, metrics: dict[str, Any], extra: str = "") -> str:
    cells = [f"{float(metrics[c]):.4f}" if c in metrics else "-" for c in COLUMNS]
    return f"| {label} | " + " | ".join(cells) + f" | {extra} |"


def header() -> str:
    names = " | ".join(COLUMNS)
    return f"| recipe | {names} | notes |\n|---|" + "---|" * (len(COLUMNS) + 1)


def baselines(dataset: str, methods: list[str], image_size: int) -> list[str]:
    """Val metrics of parameter-free fusions, one table row each."""
    from benchbox.config.layers import resolve
    from benchbox.engine.inference import Predictor
    from benchbox.engine.prepare import prepare
    from benchbox.engine.selection import validate

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name in methods:
            config = resolve(
                None,
                None,
                {
                    "dataset": dataset,
                    "fusion": name,
                    "seg": "none",
                    "image_size": image_size,
                    "out": out,
                },
            )
            p = prepare(config)
            if p.models.fusion_trainable:
                raise SystemExit(f"{name} has parameters; train it with benchbox run instead")
            val = validate(
                p.dataset, Predictor(p.models.fusion, None, p.device, p.amp), max_cases=0
            )
            rows.append(_row(name, val, "no training"))
    return rows


def runs(folders: list[Path]) -> list[str]:
    """Val metrics of trained runs at their selected epoch, one table row each."""
    rows = []
    for folder in folders:
        record = json.loads((folder / "metrics.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        sel = record["selection"]
        chosen = [
            e for e in record["curve"] if e.get("epoch") == sel["epoch"] and e.get("val")
        ] or [e for e in record["curve"] if e.get("val")][-1:]
        if not chosen:
            raise SystemExit(f"{folder}: no validated epoch in metrics.json")
        val = chosen[-1]["val"]

        def show(name: str, opts: dict[str, Any]) -> str:
            return name + (
                " (" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")" if opts else ""
            )

        label = (
            show(config["fusion"], config.get("fusion_opts") or {})
            + " + "
            + show(config["fusion_loss"], config.get("fusion_loss_opts") or {})
        )
        note = f"epoch {sel['epoch']} of {sel['epochs_run']} by val {sel['metric']}"
        rows.append(_row(label, val, note))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("baselines", help="val metrics of parameter-free fusions")
    b.add_argument("--dataset", required=True)
    b.add_argument("--image-size", type=int, default=256)
    b.add_argument("methods", nargs="*", default=["max", "laplacian", "mean"])
    r = sub.add_parser("runs", help="val metrics of trained runs at their selected epoch")
    r.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    print(header())
    if args.command == "baselines":
        rows = baselines(args.dataset, args.methods, args.image_size)
    else:
        rows = runs(args.folders)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
