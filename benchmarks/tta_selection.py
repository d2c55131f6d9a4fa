"""Decide test-time mirroring on validation cases: does ``--tta flip`` help?

    python benchmarks/tta_selection.py RUN_DIR [RUN_DIR ...]
        [--out benchmarks/results/tta_selection]

For each finished run folder (e.g. the runs of ``configs/sweeps/brats2015.toml`` and
``claims-brats-96.toml``), the selected checkpoint is loaded
(:func:`benchbox.engine.restore.load_run`), its training dataset reopened with the recorded
parameters, and the **validation** split scored by :func:`benchbox.engine.selection.validate`
twice: one pass per slice, and the 4 mirrored passes of ``--tta flip``
(:mod:`benchbox.engine.tta`), both with the run's own post-processing. Since ``--tta`` does
not change which checkpoint a run selects, this is what a run with ``--tta flip`` would
have recorded as its final validation. The test split is not opened.

Writes ``<out>.csv`` (one row per run) and ``<out>.md`` (the table and the means).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from val_pairs import METRICS, RunOpener, describe, paired_lines, score_runs, val_scores

from benchbox.engine.postprocess import postprocessor

MODES = ("none", "flip")


def score_run(run_dir: Path, opener: RunOpener) -> dict[str, object]:
    """The validation Dice and HD95 of one run's checkpoint, single-pass and mirrored."""
    run, dataset = opener(run_dir)
    row: dict[str, object] = {
        "run": run_dir.name,
        "segmenter": run.config.seg,
        "image_size": run.config.image_size,
        "postprocess": run.postprocess,
        "seed": run.config.seed,
        **describe(dataset),
    }
    for mode in MODES:
        scores = val_scores(run, dataset, tta=mode, postprocess=postprocessor(run.postprocess))
        for metric in METRICS:
            row[f"{metric}_{mode}"] = scores[metric]
    return row


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
    lines += paired_lines(table, "none", "flip", ("one pass", "flip"))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default="benchmarks/results/tta_selection")
    args = parser.parse_args()
    score_runs(args.runs, score_run, report, args.out)


if __name__ == "__main__":
    main()
