"""Does a 3D ``benchbox run`` train as fast as a bare PyTorch loop? Target: ratio >= 0.97.

    python benchmarks/run_vs_loop_3d.py [--repeats 4] [--seg monai-segresnet]
        [--patch 32,32,32] [--batch-size 2] [--n-train 4] [--patches-per-case 4] [--epochs 2]
        [--out benchmarks/results/run_vs_loop_3d]

1. benchbox: a 3D run's training (``--fusion none --seg SEG --patch-size PATCH`` on the
   3D phantom), prepared by :func:`benchbox.engine.prepare.prepare` and trained by
   :func:`benchbox.engine.schedule.train_stages`, the code ``benchbox run`` trains with
   (validation off: it is not training); its stage's images/s (patches/s, the first
   steps excluded as the record excludes them).
2. A bare loop over the same patches (the same :class:`benchbox.engine.patches.PatchSamples`
   draws through the same seeded loader), the same freshly built model (same seed) and
   loss, AdamW with the same learning rate and weight decay: ``zero_grad``, forward,
   loss, ``backward``, ``step``, and nothing else. Its patches/s is measured the same way.

The two alternate ``--repeats`` times in one process in ABBA order, as
``benchmarks/run_vs_loop.py`` does for 2D; the ratio of the medians and the median of the
per-repeat ratios are reported with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from session import Session, run_vs_loop, run_vs_loop_text


def config(args: argparse.Namespace, out: str) -> Any:
    from benchbox.config.layers import resolve

    return resolve(
        None,
        None,
        {
            "dataset": "synthetic3d",
            "fusion": "none",
            "seg": args.seg,
            "patch_size": args.patch,
            "batch_size": args.batch_size,
            "patches_per_case": args.patches_per_case,
            "epochs": args.epochs,
            "val_every": 0,
            "device": "cpu",
            "amp": "off",
            "out": out,
            "data_opts": {"n_train": args.n_train, "n_val": 1, "n_test": 1, "depth": 32},
        },
    )


def run_img_s(args: argparse.Namespace) -> float:
    from benchbox.engine.prepare import prepare
    from benchbox.engine.schedule import train_stages

    with tempfile.TemporaryDirectory() as out:
        p = prepare(config(args, out))
        stats = train_stages(p, None, None)
    return float(stats[-1].images_per_s)


def loop_img_s(args: argparse.Namespace) -> float:
    import torch

    from benchbox.engine.prepare import prepare
    from benchbox.engine.train import excluded_steps, make_loader

    with tempfile.TemporaryDirectory() as out:
        c = config(args, out)
        p = prepare(c)  # the same patches and model a run builds, seeded alike
    loader = make_loader(p.train_patches, c.batch_size, shuffle=True, seed=c.seed, drop_last=True)
    model, loss_fn = p.models.segmenter, p.models.seg_loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    model.train()
    skip = excluded_steps(c.epochs * len(loader))
    steps, images, seconds = 0, 0, 0.0
    for _ in range(c.epochs):
        t0 = time.perf_counter()
        for batch in loader:
            x, mask = torch.cat([batch["a"], batch["b"]], dim=1), batch["mask"]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), mask)
            loss.backward()
            optimizer.step()
            now = time.perf_counter()
            dt, t0 = now - t0, now
            steps += 1
            if steps > skip:
                images += int(x.shape[0])
                seconds += dt
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--seg", default="monai-segresnet")
    parser.add_argument("--patch", default="32,32,32")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=4)
    parser.add_argument("--patches-per-case", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "run_vs_loop_3d"
    )
    args = parser.parse_args()
    session = Session()
    result = run_vs_loop(
        lambda: run_img_s(args), lambda: loop_img_s(args), args.repeats, "patches/s", 3
    )
    fields = session.fields()
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        **fields,
        "run_patches_s": result["run"],
        "loop_patches_s": result["loop"],
        "ratio_of_medians": result["ratio_of_medians"],
        "median_of_paired_ratios": result["median_of_paired_ratios"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    s = report["settings"]
    text = f"""# 3D training: `benchbox run` vs a bare PyTorch loop

`python benchmarks/run_vs_loop_3d.py --repeats {s["repeats"]} --seg {s["seg"]} --patch \
{s["patch"]} --batch-size {s["batch_size"]} --n-train {s["n_train"]} --patches-per-case \
{s["patches_per_case"]} --epochs {s["epochs"]}` on {report["cpu"]}, {report["cores"]} \
cores, torch {report["torch"]} ({report["torch_threads"]} threads): `--fusion none`, \
the 3D phantom, float32, the same patches, model and loss. Run and loop alternate in one \
process (ABBA order).

""" + run_vs_loop_text(result, fields, "patches/s", 3, 0.97)
    args.out.with_suffix(".md").write_text(text)
    print(f"ratio {result['ratio_of_medians']:.3f}; wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
