"""Produce the project's reference leaderboards in ``leaderboards/reference/``.

    python benchmarks/reference_leaderboards.py [synthetic] [aanlib] [brats]

Each benchmark runs ``benchbox run`` as a user would (one subprocess per run, its run
folder in a temporary directory) and appends the row that run wrote to
``leaderboards/reference/<dataset>.csv`` through :func:`benchbox.leaderboard.append_row`.
A run whose (fusion, segmenter, seed, config hash) is already in the reference file is
skipped, so the script can be stopped and resumed.

* ``synthetic``: the quick preset, {mean, max, laplacian, dual, timm-dual} x {attunet,
  smp-unet with a tu-resnet18 encoder}, seeds 0, 1, 2.
* ``aanlib``: AANLIB CT-MRI, fusion only, at the images' own 256x256 (batch 8, otherwise
  the quick preset); the learned methods with seeds 0, 1, 2, the deterministic
  baselines once.
* ``brats``: the 4 BraTS cases, 4-fold cross-validation by case (3 train, 1 test),
  FLAIR + T1c fused by ``dual``, whole tumour segmented by ``attunet`` (a binary target),
  the quick preset with 12 joint epochs. Per-case 3D Dice/HD95 and wall times go to
  ``benchmarks/results/brats2015.md``.

Real images come from ``$BENCHBOX_DATA`` (default ``../shared/data``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "leaderboards" / "reference"
RESULTS = REPO / "benchmarks" / "results"
DATA = Path(os.environ.get("BENCHBOX_DATA", REPO.parent / "shared" / "data"))

FUSIONS = ["mean", "max", "laplacian", "dual", "timm-dual"]
LEARNED = {"dual", "timm-dual"}
SEGMENTERS = {"attunet": [], "smp-unet": ["--seg-opt", "encoder=tu-resnet18"]}
SEEDS = [0, 1, 2]


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _done(dataset: str, fusion: str, seg: str, seed: int, tag: str) -> bool:
    return any(
        r["fusion"] == fusion
        and r["segmenter"] == seg
        and r["seed"] == str(seed)
        and r.get("reference_setup", "") == tag
        for r in _rows(REFERENCE / f"{dataset}.csv")
    )


def run(dataset: str, fusion: str, seg: str, seed: int, tag: str, args: list[str]) -> dict | None:
    """One ``benchbox run``; its row goes to the reference leaderboard with ``tag``."""
    from benchbox.leaderboard import append_row

    if _done(dataset, fusion, seg, seed, tag):
        print(f"skip {dataset} {fusion} {seg} seed {seed} ({tag}): already in the reference")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            shutil.which("benchbox") or "benchbox",
            "run",
            "--fusion",
            fusion,
            "--seg",
            seg,
            "--seed",
            str(seed),
            "--out",
            tmp,
            *args,
        ]
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {proc.stderr.strip()}")
        [board] = (Path(tmp) / "leaderboards").glob("*.csv")
        row = _rows(board)[-1]
        run_dir = Path(tmp) / "runs" / row["run_id"]
        per_case = _rows(run_dir / "per_case.csv")
        metrics = json.loads((run_dir / "metrics.json").read_text())
    row["reference_setup"] = tag
    append_row(REFERENCE / f"{dataset}.csv", row)
    print(f"  {wall:.1f} s", flush=True)
    return {"row": row, "per_case": per_case, "wall_s": wall, "metrics": metrics}


def synthetic() -> None:
    for seg, seg_args in SEGMENTERS.items():
        for fusion in FUSIONS:
            for seed in SEEDS:
                run("synthetic", fusion, seg, seed, "quick", seg_args)


def aanlib() -> None:
    root = DATA / "aanlib" / "CT-MRI"
    if not root.is_dir():
        sys.exit(f"AANLIB not found at {root}; set BENCHBOX_DATA")
    args = ["--dataset", f"pairs:{root}", "--image-size", "256", "--batch-size", "8"]
    args += ["--data-opt", "val_fraction=0.1"]  # the pairs default when the rows were made
    for fusion in FUSIONS:
        for seed in SEEDS if fusion in LEARNED else SEEDS[:1]:
            run("aanlib-ct-mri", fusion, "none", seed, "quick-256", args)


BRATS_CASES = [
    "brats_2013_pat0003_1",
    "brats_2013_pat0004_1",
    "brats_2013_pat0005_1",
    "brats_2013_pat0006_1",
]


def brats() -> None:
    config = (REPO / "configs" / "brats2015.toml").read_text()
    if not (DATA / "brats2015").is_dir():
        sys.exit(f"BraTS not found at {DATA / 'brats2015'}; set BENCHBOX_DATA")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in BRATS_CASES:
            train = [c for c in BRATS_CASES if c != case]
            fold = re.sub(
                r"\[split\].*\Z",
                f"[split]\ntrain = {json.dumps(train)}\ntest = [{json.dumps(case)}]\n",
                config,
                flags=re.S,
            ).replace("${BENCHBOX_DATA}", str(DATA))
            path = Path(tmp) / f"brats-{case}.toml"
            path.write_text(fold)
            out = run(
                "brats2015",
                "dual",
                "attunet",
                0,
                f"quick-e12-fold-{case}",
                [
                    "--dataset",
                    f"cases:{path}",
                    "--data-opt",
                    "target=whole-tumour",
                    "--epochs",
                    "12",
                ],
            )
            if out:
                results.append((case, out))
    if results:
        _write_brats(results)


def _write_brats(results: list[tuple[str, dict]]) -> None:
    lines = [
        "# BraTS 2013/2015 (4 cases): FLAIR + T1c fused by `dual`, whole tumour by `attunet`",
        "",
        "`python benchmarks/reference_leaderboards.py brats`: 4-fold cross-validation by case "
        "(each fold trains on 3 cases and tests on the 4th), quick preset (64x64 slices, "
        "batch 16, 2 fusion pre-training epochs) with 12 joint epochs, "
        "`--data-opt target=whole-tumour` (binary task), seed 0, on this project's 2-core "
        "CPU with no GPU. Dice and HD95 are 3D, per case, on the scan's own 1 mm grid "
        "(predictions restored from the 64x64 training grid).",
        "",
        "| test case | Dice (whole tumour) | HD95 (mm) | NSD at 1 mm | ASSD (mm) | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for case, out in results:
        [pc] = out["per_case"]
        lines.append(
            f"| {case} | {float(pc['dice_whole-tumour']):.4f} "
            f"| {float(pc['hd95_whole-tumour']):.2f} "
            f"| {float(pc['nsd_whole-tumour']):.4f} | {float(pc['assd_whole-tumour']):.2f} "
            f"| {out['wall_s']:.1f} |"
        )
    dice = [float(o["per_case"][0]["dice_whole-tumour"]) for _, o in results]
    hd95 = [float(o["per_case"][0]["hd95_whole-tumour"]) for _, o in results]
    lines += [
        "",
        f"Mean over the folds: Dice {sum(dice) / len(dice):.4f}, "
        f"HD95 {sum(hd95) / len(hd95):.2f} mm; total wall time "
        f"{sum(o['wall_s'] for _, o in results):.0f} s.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "brats2015.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    chosen = sys.argv[1:] or ["brats", "synthetic", "aanlib"]
    for name in chosen:
        {"synthetic": synthetic, "aanlib": aanlib, "brats": brats}[name]()


if __name__ == "__main__":
    main()
