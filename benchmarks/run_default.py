"""Time the first command a new user types, end to end, and record its test Dice.

    python benchmarks/run_default.py [--repeats 2] [--other-seed 1]

Runs ``benchbox run --fusion dual --seg attunet`` as a subprocess (start-up, imports,
data generation, training, evaluation and records included) in a fresh output folder,
``--repeats`` times with seed 0 and once with ``--other-seed``. Reads the test Dice from
the leaderboard row each run appended, checks that seed 0 gives identical metrics each
time and the other seed different ones, and writes ``benchmarks/results/run_default.md``
and ``.json`` with the machine it ran on and the load while it ran.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchbox.engine.device import device_name

HERE = Path(__file__).resolve().parent
TIMING = ("time", "run_id", "img_s", "wall_s", "config_hash")


def run_once(seed: int, out: Path) -> dict:
    cmd = [
        shutil.which("benchbox") or "benchbox",
        "run",
        "--fusion",
        "dual",
        "--seg",
        "attunet",
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchbox run failed ({proc.returncode}):\n{proc.stderr}")
    with (out / "leaderboards" / "synthetic.csv").open(newline="") as f:
        row = list(csv.DictReader(f))[-1]
    return {
        "seed": seed,
        "wall_s": round(wall, 2),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "row": row,
    }


def metrics_of(row: dict) -> dict:
    return {
        k: v
        for k, v in row.items()
        if v and not any(t in k for t in TIMING) and k not in ("time", "run_id")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--other-seed", type=int, default=1)
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            runs.append(run_once(0, Path(tmp) / f"seed0-{i}"))
        runs.append(run_once(args.other_seed, Path(tmp) / "other"))

    same = [metrics_of(r["row"]) for r in runs[:-1]]
    identical = all(m == same[0] for m in same)
    differs = metrics_of(runs[-1]["row"]) != same[0]
    result = {
        "command": "benchbox run --fusion dual --seg attunet",
        "machine": {
            "cpu": device_name(torch.device("cpu")),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {k: runs[0]["row"][k] for k in ("benchbox_version", "torch_version")},
        "runs": [
            {
                "seed": r["seed"],
                "wall_s": r["wall_s"],
                "dice_lesion": float(r["row"]["dice_lesion"]),
                "hd95_lesion_mm": float(r["row"]["hd95_lesion"]),
                "ssim_mean": float(r["row"]["ssim_mean"]),
                "train_img_s": float(r["row"]["train_img_s"]),
                "load_before": r["load_before"],
                "load_after": r["load_after"],
            }
            for r in runs
        ],
        "seed0_metrics_identical": identical,
        "other_seed_metrics_differ": differs,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "run_default.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `benchbox run --fusion dual --seg attunet`, end to end",
        "",
        f"`python benchmarks/run_default.py` on {result['machine']['cpu']}, no GPU; "
        f"{result['machine']['platform']}, "
        f"Python {result['machine']['python']}, torch {result['versions']['torch_version']}, "
        f"benchbox {result['versions']['benchbox_version']}. Quick preset (the default).",
        "",
        "Wall time is the whole subprocess: start-up, imports, data generation, training, "
        "evaluation and records. Targets: at most 120 s and a test Dice of at least 0.75.",
        "",
        "| seed | wall time (s) | test Dice (lesion) | HD95 (mm) | SSIM mean | training img/s "
        "| load before / after (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['seed']} | {r['wall_s']:.1f} | {r['dice_lesion']:.4f} | "
            f"{r['hd95_lesion_mm']:.3f} | {r['ssim_mean']:.4f} | {r['train_img_s']:.1f} | "
            f"{r['load_before'][0]:.2f} / {r['load_after'][0]:.2f} |"
        )
    lines += [
        "",
        f"Seed 0 twice gives identical metric values: **{identical}**. "
        f"Seed {args.other_seed} gives different ones: **{differs}**.",
        "",
    ]
    (HERE / "results" / "run_default.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
