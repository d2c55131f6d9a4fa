"""Decide test-time mirroring on validation cases: does ``--tta flip`` help?

    python benchmarks/tta_selection.py RUN_DIR [RUN_DIR ...]
        [--out benchmarks/results/tta_selection]

For each finished run folder (e.g. the runs of ``configs/sweeps/brats2015.toml`` and
``claims-brats-96.toml``), the selected checkpoint is loaded
(:func:`benchbox.restore.load_run`), its training dataset reopened with the recorded
parameters, and the **validation** split scored by :func:`benchbox.selection.validate`
twice: one pass per slice, and the 4 mirrored passes of ``--tta flip``
(:mod:`benchbox.tta`), both with the run's own post-processing. Since ``--tta`` does
not change which checkpoint a run selects, this is what a run with ``--tta flip`` would
have recorded as its final validation. The test split is not opened.

Writes ``<out>.csv`` (one row per run) and ``<out>.md`` (the table and the means).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd
import torch
from scipy.stats import wilcoxon

from benchbox.postprocess import postprocessor
from benchbox.predict import Predictor
from benchbox.restore import load_run, open_training_dataset
from benchbox.selection import validate
from benchbox.train import resolve_amp

METRICS = ("dice", "hd95")
MODES = ("none", "flip")


def score_run(run_dir: Path, datasets: dict[str, object]) -> dict[str, object]:
    """The validation Dice and HD95 of one run's checkpoint, single-pass and mirrored.

    ``datasets`` caches the opened dataset by its parameters: the runs of a sweep share
    a few folds, and opening the BraTS volumes is the slow part.
    """
    run = load_run(run_dir)
    key = json.dumps([run.config.dataset, run.config.data_opts, run.config.image_size])
    if key not in datasets:
        datasets.clear()  # main() sorts the runs by dataset: one in memory at a time
        datasets[key] = open_training_dataset(run.config)
    dataset = datasets[key]
    cpu = torch.device("cpu")
    described = dataset.config()  # type: ignore[attr-defined]
    row: dict[str, object] = {
        "run": run_dir.name,
        "segmenter": run.config.seg,
        "image_size": run.config.image_size,
        "postprocess": run.postprocess,
        "seed": run.config.seed,
        "fold": described.get("fold", ""),
        "val_cases": ";".join(described["splits"]["val"]),
    }
    for mode in MODES:
        predictor = Predictor(run.fusion, run.segmenter, cpu, resolve_amp("off", cpu), tta=mode)
        scores = validate(
            dataset,
            predictor,
            batch_size=run.config.eval_batch_size,
            nsd_tolerance=run.config.nsd_tolerance,
            max_cases=run.config.max_val_cases,
            postprocess=postprocessor(run.postprocess),
        )
        for metric in METRICS:
            row[f"{metric}_{mode}"] = scores[metric]
    return row


def _dataset_of(run_dir: Path) -> str:
    config = json.loads((run_dir / "config.json").read_text())
    return json.dumps([config["dataset"], config["data_opts"], config["image_size"]])


HEADER = """# Test-time mirroring decided on validation cases: `--tta flip` or not?

Made by `python benchmarks/tta_selection.py RUN_DIR ...`: each run's selected
checkpoint scores its **validation** split with one pass per slice and with the 4
mirrored passes of `--tta flip`, both with the run's post-processing. `--tta` does not
change the selected checkpoint (selection is single-pass), so the flip column is what a
`--tta flip` run would have recorded. The test splits were not opened. Wilcoxon
signed-rank tests pair the two values of each run.

"""


def report(table: pd.DataFrame) -> str:
    lines = [
        HEADER + "| run | segmenter | size | post | seed | fold | val case | Dice none "
        "| Dice flip | HD95 none (mm) | HD95 flip (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['run']} | {r['segmenter']} | {r['image_size']} | {r['postprocess']} "
            f"| {r['seed']} | {r['fold']} | {r['val_cases']} | {r['dice_none']:.4f} "
            f"| {r['dice_flip']:.4f} | {r['hd95_none']:.1f} | {r['hd95_flip']:.1f} |"
        )
    lines.append("")
    for metric in METRICS:
        single, flip = table[f"{metric}_none"], table[f"{metric}_flip"]
        diff = flip - single
        better = int((diff > 0).sum()) if metric == "dice" else int((diff < 0).sum())
        p = wilcoxon(flip, single).pvalue if len(table) > 1 and diff.any() else float("nan")
        lines.append(
            f"- val {metric}: one pass {single.mean():.4f}, flip {flip.mean():.4f}, "
            f"difference {diff.mean():+.4f} (median {statistics.median(diff):+.4f}); "
            f"flip better in {better} of {len(table)} runs; Wilcoxon signed-rank "
            f"p = {p:.2g}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default="benchmarks/results/tta_selection")
    args = parser.parse_args()
    datasets: dict[str, object] = {}
    rows = []
    for run_dir in sorted(args.runs, key=_dataset_of):
        rows.append(score_run(run_dir, datasets))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(report(table))
    print(report(table))


if __name__ == "__main__":
    main()
