"""Choose the distillers' options on validation cases: temperature and weight.

    python benchmarks/distill_selection.py RUN_DIR [RUN_DIR ...]
        [--out benchmarks/results/distill_selection]
    python benchmarks/distill_selection.py --from-csv   # the Markdown again, from the CSV

For each finished run folder (the screening runs of
``configs/sweeps/claims-distill-screen-*.toml`` and, as the reference, the student
trained alone with the same seed), the selected checkpoint is loaded
(:func:`benchbox.engine.restore.load_run`), its training dataset reopened with the
recorded parameters and the **validation** split scored by
:func:`benchbox.engine.selection.validate`, the function that selected the checkpoint
(Dice and HD95 of the lesion). The test split is not opened, and the runs' test columns
are not read.

Decision rule, fixed before the runs were read: for each distiller, the options with
the highest validation Dice; a tie within 0.005 goes to the lower validation HD95.

Writes ``<out>.csv`` (one row per run) and ``<out>.md`` (the table and the choices).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from benchbox.engine.device import resolve_amp
from benchbox.engine.distill import describe
from benchbox.engine.inference import Predictor
from benchbox.engine.restore import load_run, open_training_dataset
from benchbox.engine.selection import validate

TIE = 0.005


def score_run(run_dir: Path) -> dict[str, object]:
    """The validation Dice and HD95 of one run's selected checkpoint."""
    run = load_run(run_dir)
    dataset = open_training_dataset(run.config)
    cpu = torch.device("cpu")
    predictor = Predictor(run.fusion, run.segmenter, cpu, resolve_amp("off", cpu))
    scores = validate(
        dataset,
        predictor,
        batch_size=run.config.eval_batch_size,
        nsd_tolerance=run.config.nsd_tolerance,
        max_cases=run.config.max_val_cases,
    )
    record = json.loads((run_dir / "metrics.json").read_text())
    return {
        "run": run_dir.name,
        "encoder": run.config.params("seg_opts").get("encoder", ""),
        "seed": run.config.seed,
        "distiller": ",".join(run.config.distill) or "none",
        "distill": describe(run.config) or "none (student alone)",
        "val_dice": scores["dice"],
        "val_hd95": scores["hd95"],
        "selected_epoch": record["selection"]["epoch"],
        "wall_s": round(float(record["wall_s"]), 1),
    }


def choose(table: pd.DataFrame) -> dict[str, str]:
    """Per distiller: the highest validation Dice, a near-tie to the lower HD95."""
    chosen = {}
    for distiller, rows in table[table["distiller"] != "none"].groupby("distiller"):
        best = rows["val_dice"].max()
        near = rows[rows["val_dice"] >= best - TIE].sort_values("val_hd95")
        chosen[str(distiller)] = str(near.iloc[0]["distill"])
    return chosen


def report(table: pd.DataFrame) -> str:
    lines = [
        "# Distillers' options, chosen on the validation split",
        "",
        "Made by `python benchmarks/distill_selection.py claims-runs/runs/RUN_ID ...` (the "
        "run ids are the `run` column of `distill_selection.csv`): each run's selected "
        "checkpoint scored on the 64 validation slices of the phantom (Dice and HD95 of "
        "the lesion, in mm, as in selection). The test split was not opened and the "
        "runs' test columns were not read.",
        "",
        "Runs: the student alone of `configs/sweeps/claims-distill-phantom.toml` (seed 0), "
        "and the screening runs of `configs/sweeps/claims-distill-screen-logits.toml` "
        "and `claims-distill-screen-cwd.toml` (seed 0, the seed-0 teacher), run with "
        "`benchbox sweep --grid ... --jobs 2 --out claims-runs --leaderboard-dir "
        "selection-runs/leaderboards`. Round 1: temperature 1 or 4 x weight 0.5 or 2. "
        "Round 2 was added after reading round 1, on validation numbers only: the lower "
        "weight had been better at both temperatures for both distillers, so weights 0.1 "
        "and 0.25 were tried at each distiller's best round-1 temperature. One seed and 64 "
        "validation slices: differences of 0.01 in Dice are within what another seed "
        "could give.",
        "",
        "Sizing, also on validation only: a first version of step 1 with 6 epochs left "
        "every run still improving at its last epoch (val Dice: teachers 0.831-0.860, "
        "students alone 0.456-0.774), so the grids use 16 epochs (teachers about 4 min, "
        "students 1-3 min on this shared 2-core CPU).",
        "",
        "| distillation | seed | val Dice | val HD95 | selected epoch | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values(["distiller", "val_dice"], ascending=[True, False]).iterrows():
        lines.append(
            f"| {row['distill']} | {row['seed']} | {row['val_dice']:.4f} | "
            f"{row['val_hd95']:.3f} | {row['selected_epoch']} | {row['wall_s']} |"
        )
    lines += ["", f"Chosen (highest val Dice; within {TIE} the lower val HD95):", ""]
    lines += [f"- `{name}`: {choice}" for name, choice in choose(table).items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", default="benchmarks/results/distill_selection")
    parser.add_argument(
        "--from-csv", action="store_true", help="rewrite <out>.md from <out>.csv, scoring nothing"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if args.from_csv:
        table = pd.read_csv(out.with_suffix(".csv"))
    else:
        if not args.runs:
            parser.error("give the run folders to score (or --from-csv)")
        table = pd.DataFrame([score_run(r) for r in args.runs])
        table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(report(table))
    print(report(table))


if __name__ == "__main__":
    main()
