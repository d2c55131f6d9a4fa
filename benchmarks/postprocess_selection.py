"""Decide post-processing on validation cases: does keeping the largest component help?

    python benchmarks/postprocess_selection.py RUN_DIR [RUN_DIR ...]
        [--out benchmarks/results/postprocess_selection]

For each finished run folder (e.g. the runs of ``configs/sweeps/brats2015.toml`` and
``claims-brats.toml``), the selected checkpoint is loaded
(:func:`benchbox.engine.restore.load_run`),
its training dataset reopened with the recorded parameters, and the **validation** split
scored twice with :func:`benchbox.engine.selection.validate`, the function that selected the
checkpoint: raw labels, and each class reduced to its largest connected component
(:func:`benchbox.engine.postprocess.keep_largest`). The same decision over all runs at once is
what ``--postprocess auto`` makes for a single run; pooling the runs of a sweep gives it
more than one validation case. The test split is not opened.

Writes ``<out>.csv`` (one row per run) and ``<out>.md`` (the table and the means).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from val_pairs import METRICS, RunOpener, describe, paired_lines, score_runs, val_scores

from benchbox.engine.postprocess import keep_largest


def score_run(run_dir: Path, opener: RunOpener) -> dict[str, object]:
    """The validation Dice and HD95 of one run's checkpoint, raw and post-processed."""
    run, dataset = opener(run_dir)
    row: dict[str, object] = {
        "run": run_dir.name,
        "segmenter": run.config.seg,
        "augment": ",".join(run.config.augment) or "none",
        "seed": run.config.seed,
        **describe(dataset),
    }
    for name, post in (("none", None), ("largest", keep_largest)):
        scores = val_scores(run, dataset, postprocess=post)
        for metric in METRICS:
            row[f"{metric}_{name}"] = scores[metric]
    return row


HEADER = """# Post-processing decided on validation cases: keep the largest component?

Made by `python benchmarks/postprocess_selection.py RUN_DIR ...`: each run's selected
checkpoint scores its **validation** split twice, with the raw labels and with each
class reduced to its largest 3D connected component (`--postprocess largest`). The test
splits were not opened. Wilcoxon signed-rank tests pair the two values of each run.

"""


def report(table: pd.DataFrame) -> str:
    lines = [
        HEADER + "| run | segmenter | augment | seed | fold | val case | Dice raw | Dice largest "
        "| HD95 raw (mm) | HD95 largest (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['run']} | {r['segmenter']} | {r['augment']} | {r['seed']} | {r['fold']} "
            f"| {r['val_cases']} | {r['dice_none']:.4f} | {r['dice_largest']:.4f} "
            f"| {r['hd95_none']:.1f} | {r['hd95_largest']:.1f} |"
        )
    lines.append("")
    lines += paired_lines(table, "none", "largest", ("raw", "largest"))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default="benchmarks/results/postprocess_selection")
    args = parser.parse_args()
    torch.set_num_threads(1)
    score_runs(args.runs, score_run, report, args.out)


if __name__ == "__main__":
    main()
