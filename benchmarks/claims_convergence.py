"""Claim 3 of the seed article: "two-stage training converges 40% faster".

    python benchmarks/claims_convergence.py LEADERBOARD [--runs DIR] [--threshold 0.9 ...]
        [--out benchmarks/results/claims_convergence]

Reads the runs of ``configs/sweeps/claims-phantom.toml`` (``loss = hybrid``): two-stage
runs (``fusion_epochs = 2``, then 6 joint epochs) and joint-only runs (``fusion_epochs =
0``, 8 joint epochs). For each run and each validation-Dice threshold (fixed before the
runs were made: 0.90 and 0.95), it finds the first joint epoch whose validation Dice
(``metrics.json`` ``curve``) reaches the threshold, and the training time spent until
then: the whole fusion pre-training stage plus that share of the joint stage
(``stages[].seconds``; validation itself is not counted). A run that never reaches the
threshold is reported as not reaching it (censored), not dropped.

Only validation numbers are read; the test split plays no part.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from benchbox.records import leaderboard


def reach(
    record: dict[str, Any], stages: dict[str, Any], threshold: float
) -> tuple[int | None, float | None]:
    """(joint epoch, training seconds) at which val Dice first reaches ``threshold``."""
    joint = stages["joint"]
    pre = stages["fusion"]["seconds"] if "fusion" in stages else 0.0
    for point in record["curve"]:
        if point["stage"] != "joint":
            continue
        if point["val"]["dice"] >= threshold:
            epoch = int(point["epoch"])
            return epoch, pre + joint["seconds"] * epoch / joint["epochs"]
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("leaderboard", type=Path)
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--threshold", type=float, action="append")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "claims_convergence",
    )
    args = parser.parse_args()
    thresholds = args.threshold or [0.90, 0.95]
    runs_dir = args.runs or args.leaderboard.parent.parent / "runs"
    board = leaderboard.read(args.leaderboard)
    board = board[board["loss"] == "hybrid"]
    rows = []
    for _, row in board.iterrows():
        record = json.loads((runs_dir / row["run_id"] / "metrics.json").read_text())
        schedule = "two-stage" if int(row["fusion_epochs"]) > 0 else "joint only"
        stages = {s["name"]: s for s in record["stages"]}
        for t in thresholds:
            epoch, seconds = reach(record, stages, t)
            rows.append(
                {
                    "schedule": schedule,
                    "seed": int(row["seed"]),
                    "threshold": t,
                    "epoch": epoch,
                    "train_s": seconds,
                    "pretrain_s": stages.get("fusion", {}).get("seconds", 0.0),
                    "joint_epochs": stages["joint"]["epochs"],
                    "best_val_dice": max(
                        p["val"]["dice"] for p in record["curve"] if p["stage"] == "joint"
                    ),
                    "run_id": row["run_id"],
                }
            )
    table = pd.DataFrame(rows).sort_values(["threshold", "schedule", "seed"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    lines = [
        "# Claim 3: does two-stage training reach a validation Dice sooner?",
        "",
        f"`python benchmarks/claims_convergence.py {args.leaderboard}` on the runs of "
        "`configs/sweeps/claims-phantom.toml` (dual + attunet, hybrid loss, quick preset; "
        "two-stage = 2 fusion pre-training epochs + 6 joint, joint only = 8 joint epochs). "
        "Validation numbers only. Training seconds exclude validation; a run's pre-training "
        "counts in full.",
        "",
        "| threshold | schedule | seed | joint epoch reached | training s to reach | "
        "best val Dice | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        epoch = "not reached" if pd.isna(r.epoch) else str(int(r.epoch))
        secs = "-" if pd.isna(r.train_s) else f"{r.train_s:.1f}"
        lines.append(
            f"| {r.threshold:.2f} | {r.schedule} | {r.seed} | {epoch} | {secs} | "
            f"{r.best_val_dice:.4f} | {r.run_id} |"
        )
    lines.append("")
    for t in thresholds:
        part = table[table["threshold"] == t]
        summary = []
        for schedule in ("two-stage", "joint only"):
            s = part[part["schedule"] == schedule]
            reached = s.dropna(subset=["epoch"])
            if len(reached) == len(s) and len(s):
                summary.append(
                    f"{schedule}: epoch {statistics.mean(reached['epoch']):.2f}, "
                    f"{statistics.mean(reached['train_s']):.1f} s (mean of {len(s)} seeds)"
                )
            else:
                summary.append(f"{schedule}: {len(reached)} of {len(s)} seeds reached it")
        lines.append(f"- val Dice {t:.2f}: " + "; ".join(summary))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
