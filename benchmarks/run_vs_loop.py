"""Does ``benchbox run`` train as fast as a bare PyTorch loop? Target: ratio >= 0.99.

    python benchmarks/run_vs_loop.py [--repeats 6] [--image-size 64] [--batch-size 16]
        [--n-train 256] [--epochs 3] [--out benchmarks/results/run_vs_loop]

1. ``benchbox run --fusion dual --seg attunet --fusion-epochs 0`` (in this process,
   through :func:`benchbox.engine.runner.run`): its joint-stage ``train_img_s`` from the
   record (first steps excluded, see :func:`benchbox.engine.train.excluded_steps`).
2. A bare loop over the same dataset split, the same freshly built models (same seed),
   batch, shuffling, losses and ``fusion_weight``, and AdamW with the same learning rate
   and weight decay: ``zero_grad``, forward, loss, ``backward``, ``step``, and nothing
   else (no schedule, no loss read). Its images/s is measured the same way: a step runs
   from the end of the previous one, the same first steps excluded.

The two alternate, ``--repeats`` times, in one process, in ABBA order (run first in
odd repeats, loop first in even ones), so a change of machine load hits both and a
steady drift cancels. Two summaries: the ratio of the medians, and the median of the
per-repeat ratios (each run paired with the loop measured next to it, which cancels
slower load changes too). The load average and the CPU time
used by other processes are recorded: the machine may be shared.
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
    from benchbox.config.run import RunConfig

    return RunConfig(
        fusion="dual",
        seg="attunet",
        image_size=args.image_size,
        batch_size=args.batch_size,
        fusion_epochs=0,
        epochs=args.epochs,
        device="cpu",
        amp="off",
        examples=1,
        out=out,
        data_opts={"n_train": args.n_train, "n_val": 2, "n_test": 2},
    )


def run_img_s(args: argparse.Namespace) -> float:
    from benchbox.engine import runner

    with tempfile.TemporaryDirectory() as out:
        result = runner.run(config(args, out))
    return float(result.record["throughput"]["train_img_s"])


def loop_img_s(args: argparse.Namespace) -> float:
    import torch

    from benchbox.engine import runner
    from benchbox.engine.train import excluded_steps, make_loader

    with tempfile.TemporaryDirectory() as out:
        c = config(args, out)
        p = runner.prepare(c)  # the same dataset and models a run builds, seeded alike
    loader = make_loader(
        p.dataset.split("train"), c.batch_size, shuffle=True, seed=c.seed, drop_last=True
    )
    params = list(p.models.segmenter.parameters()) + list(p.models.fusion.parameters())
    optimizer = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
    p.models.fusion.train()
    p.models.segmenter.train()
    skip = excluded_steps(c.epochs * len(loader))
    steps, images, seconds = 0, 0, 0.0
    for _ in range(c.epochs):
        t0 = time.perf_counter()
        for batch in loader:
            a, b, mask = batch["a"], batch["b"], batch["mask"]
            optimizer.zero_grad(set_to_none=True)
            fused = p.models.fusion(a, b)
            loss = p.models.seg_loss(p.models.segmenter(fused), mask)
            loss = loss + c.fusion_weight * p.models.fusion_loss(fused, a, b)
            loss.backward()
            optimizer.step()
            now = time.perf_counter()
            dt, t0 = now - t0, now
            steps += 1
            if steps > skip:
                images += int(a.shape[0])
                seconds += dt
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The quick preset's shapes (64 px, batch 16, 16 steps per epoch): each measurement
    # is long enough (~40 timed steps) that one slow step does not decide it.
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "run_vs_loop"
    )
    args = parser.parse_args()
    session = Session()
    result = run_vs_loop(
        lambda: run_img_s(args), lambda: loop_img_s(args), args.repeats, "img/s", 2
    )
    fields = session.fields()
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        **fields,
        "run_img_s": result["run"],
        "loop_img_s": result["loop"],
        "ratio_of_medians": result["ratio_of_medians"],
        "median_of_paired_ratios": result["median_of_paired_ratios"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    s = report["settings"]
    text = f"""# `benchbox run` joint stage vs a bare PyTorch loop

`python benchmarks/run_vs_loop.py --repeats {s["repeats"]} --image-size {s["image_size"]} \
--batch-size {s["batch_size"]} --n-train {s["n_train"]} --epochs {s["epochs"]}` on \
{report["cpu"]}, {report["cores"]} cores, torch {report["torch"]} \
({report["torch_threads"]} threads): `dual` + `attunet`, the synthetic phantom, joint \
stage only (`--fusion-epochs 0`), float32. Run and loop alternate in one process
(ABBA order).

""" + run_vs_loop_text(result, fields, "img/s", 2, 0.99)
    args.out.with_suffix(".md").write_text(text)
    print(f"ratio {result['ratio_of_medians']:.3f}; wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
