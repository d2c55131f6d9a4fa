"""How much does one more training case buy on BraTS? A learning curve on validation.

    python benchmarks/brats_learning_curve.py --reference reference-runs/runs \
        [--out learning-curve-runs] [--seeds 0,1,2] [--jobs 2]

The BraTS reference (``configs/sweeps/brats2015.toml``) trains each fold on 2 cases. This
script trains the same recipe on **1** of them, for every (training case, validation
case) pair that the 4 folds contain, and compares the validation Dice of the selected
checkpoint (``metrics.json``: ``selection.value``) with that of the reference runs on 2
cases, seed by seed, on the same validation case. Only validation numbers are read; each
run still scores its fold's test case, as every run does, and that column is not used.

The 1-case splits are written as case-folder configs (``configs/brats2015.toml`` with an
explicit ``[split]``) in ``<out>/configs`` and run by ``benchbox sweep`` (resumable: the
same command skips finished runs). Writes ``benchmarks/results/brats_learning_curve.md``
and ``.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pandas as pd
from scipy.stats import wilcoxon

from benchbox.data.cases import discover_cases, expand_path, load_config
from benchbox.data.splits import assign_splits

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "brats2015.toml"
REFERENCE_GRID = REPO / "configs" / "sweeps" / "brats2015.toml"
FOLDS = 4
RESULTS = REPO / "benchmarks" / "results" / "brats_learning_curve"


def fold_splits() -> list[dict[str, list[str]]]:
    """The reference's 4 folds, computed as the dataset computes them (no image read)."""
    cfg = load_config(CONFIG)
    root = expand_path(str(cfg["root"]), CONFIG.parent)
    ids = sorted(c.case_id for c in discover_cases(root, cfg))
    split = cfg["split"]
    return [
        assign_splits(
            ids, split["val_fraction"], split["test_fraction"], split["seed"], None, FOLDS, f
        )
        for f in range(FOLDS)
    ]


def one_case_splits() -> list[dict[str, list[str]]]:
    """Each fold's split with one of its 2 training cases left out; a (training case,
    validation case) pair that two folds share is trained once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for split in fold_splits():
        for kept in split["train"]:
            key = (kept, split["val"][0])
            if key not in seen:
                seen.add(key)
                out.append({"train": [kept], "val": split["val"], "test": split["test"]})
    return out


def _short(case_id: str) -> str:
    return case_id.replace("brats_2013_", "").removesuffix("_1")


def write_configs(splits: list[dict[str, list[str]]], folder: Path) -> list[Path]:
    """``configs/brats2015.toml`` with its ``[split]`` table (the last one) replaced by
    each explicit split; ``root`` made absolute so the copies work from anywhere."""
    text = CONFIG.read_text()
    head, sep, _ = text.partition("\n[split]")
    if not sep:
        raise SystemExit(f"{CONFIG}: no [split] table to replace")
    cfg = load_config(CONFIG)
    root = expand_path(str(cfg["root"]), CONFIG.parent)
    head = head.replace(f'root = "{cfg["root"]}"', f'root = "{root}"')
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in splits:
        path = folder / f"train-{_short(split['train'][0])}-val-{_short(split['val'][0])}.toml"
        lists = "\n".join(f"{k} = {json.dumps(v)}" for k, v in split.items())
        path.write_text(f"{head}\n[split]\n{lists}\n")
        paths.append(path)
    return paths


def write_grid(configs: list[Path], seeds: list[int], path: Path) -> None:
    """The reference grid's recipe, with the dataset's config file as an axis."""
    base = tomllib.loads(REFERENCE_GRID.read_text())["base"]
    opts = {k: v for k, v in base["data_opts"].items() if k not in ("folds", "fold")}
    cfg = load_config(CONFIG)
    data = expand_path(str(cfg["root"]), CONFIG.parent)
    lines = ["[base]"]
    for key in ("preset", "fusion", "seg", "epochs", "image_size", "postprocess"):
        lines.append(f"{key} = {json.dumps(base[key])}")
    lines.append(f'dataset = "cases:{data}"')
    lines.append(
        "data_opts = {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in opts.items()) + "}"
    )
    lines += ["", "[axes]"]
    lines.append('"data_opts.config" = ' + json.dumps([str(p) for p in configs]))
    lines.append(f"seed = {json.dumps(seeds)}")
    path.write_text("\n".join(lines) + "\n")


def val_records(runs: Path) -> pd.DataFrame:
    """The selected checkpoint's validation Dice of every finished BraTS run in ``runs``."""
    rows = []
    for run in sorted(runs.iterdir()):
        metrics, config = run / "metrics.json", run / "config.json"
        if not metrics.is_file():
            continue
        record = json.loads(config.read_text())
        splits = record["dataset_config"]["splits"]
        selection = json.loads(metrics.read_text())["selection"]
        rows.append(
            {
                "run": run.name,
                "seed": record["seed"],
                "train": ";".join(splits["train"]),
                "n_train": len(splits["train"]),
                "val": ";".join(splits["val"]),
                "val_dice": selection["value"],
                "selected_epoch": selection["epoch"],
            }
        )
    return pd.DataFrame(rows)


def compare(one: pd.DataFrame, two: pd.DataFrame) -> pd.DataFrame:
    """Each 2-case run beside the mean of the 1-case runs on one of its training cases,
    same validation case and seed."""
    rows = []
    for _, r in two.iterrows():
        parts = r["train"].split(";")
        match = one[(one["val"] == r["val"]) & (one["seed"] == r["seed"])]
        match = match[match["train"].isin(parts)]
        if len(match) != len(parts):
            continue
        rows.append(
            {
                "train_2": r["train"],
                "val": r["val"],
                "seed": r["seed"],
                "val_dice_2": r["val_dice"],
                "val_dice_1": match["val_dice"].mean(),
                "val_dice_1_each": ";".join(f"{v:.4f}" for v in match["val_dice"]),
            }
        )
    return pd.DataFrame(rows)


def report(one: pd.DataFrame, pairs: pd.DataFrame, command: str) -> str:
    def short(ids: str) -> str:
        return ";".join(_short(i) for i in ids.split(";"))

    lines = [
        "# BraTS learning curve on validation: 1 training case against 2",
        "",
        f"Made by `{command}`. The reference recipe (`configs/sweeps/brats2015.toml`: dual +",
        "attunet, 96 px, 12 joint epochs, quick preset) trained on one of a fold's two",
        "training cases, against the reference runs trained on both; the value is the",
        "validation Dice of the selected checkpoint (raw labels, `selection.value`), the",
        "same validation case and seed on both sides. The test columns were not read.",
        "",
        "## Runs on 1 training case",
        "",
        "| train | val | seed | val Dice | selected epoch |",
        "|---|---|---|---|---|",
    ]
    for _, r in one.sort_values(["val", "train", "seed"]).iterrows():
        lines.append(
            f"| {short(r['train'])} | {short(r['val'])} | {r['seed']} | {r['val_dice']:.4f} "
            f"| {r['selected_epoch']} |"
        )
    lines += [
        "",
        "## Paired with the 2-case reference runs",
        "",
        "| train (2 cases) | val | seed | val Dice, 2 cases | val Dice, 1 case (mean) "
        "| each 1-case run |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in pairs.iterrows():
        lines.append(
            f"| {short(r['train_2'])} | {short(r['val'])} | {r['seed']} | {r['val_dice_2']:.4f} "
            f"| {r['val_dice_1']:.4f} | {r['val_dice_1_each']} |"
        )
    if len(pairs):
        diff = pairs["val_dice_2"] - pairs["val_dice_1"]
        p = wilcoxon(pairs["val_dice_2"], pairs["val_dice_1"]).pvalue if diff.any() else 1.0
        lines += [
            "",
            f"- mean val Dice: 1 case {pairs['val_dice_1'].mean():.4f}, 2 cases "
            f"{pairs['val_dice_2'].mean():.4f}, difference {diff.mean():+.4f}; 2 cases better "
            f"in {int((diff > 0).sum())} of {len(pairs)} pairs; Wilcoxon signed-rank "
            f"p = {p:.2g}. The pairs are not independent (folds with the same validation "
            "case share their 1-case runs pairwise, and that validation case), so this "
            "p-value is optimistic; the size and the direction of the difference are the "
            "finding.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the 2-case runs folder")
    parser.add_argument("--out", type=Path, default=Path("learning-curve-runs"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    configs = write_configs(one_case_splits(), args.out / "configs")
    grid = args.out / "grid.toml"
    write_grid(configs, seeds, grid)
    sweep = [
        "benchbox", "sweep", "--grid", str(grid), "--jobs", str(args.jobs),
        "--out", str(args.out), "--leaderboard-dir", str(args.out / "leaderboards"),
    ]  # fmt: skip
    print(" ".join(sweep), flush=True)
    subprocess.run(sweep, check=True, env=os.environ.copy())
    one = val_records(args.out / "runs")
    two = val_records(args.reference)
    pairs = compare(one[one["n_train"] == 1], two[two["n_train"] == 2])
    # The folders are this machine's; the report names them by role.
    command = (
        "python benchmarks/brats_learning_curve.py --reference <the reference sweep's "
        f"runs folder> --out <runs folder> --seeds {args.seeds}"
    )
    args.results.with_suffix(".csv").write_text(pairs.to_csv(index=False))
    args.results.with_suffix(".md").write_text(report(one, pairs, command))
    print(report(one, pairs, command))


if __name__ == "__main__":
    main()
