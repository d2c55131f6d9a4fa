"""What augmentation costs per training step of the default recipe.

    python benchmarks/augment_speed.py [--rounds 5] [--steps 8]

One joint training step of the quick preset (dual + attunet, batch 16, 64x64, float32,
CPU) with and without every built-in transform (flip, rot90, affine, intensity, gamma,
noise, each with p=1 so every sample pays), interleaved round by round in one process
since the machine is shared and noisy; also the augmentation alone. Writes
``benchmarks/results/augment_speed.md`` with the machine and the load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from benchbox.engine.augment import Augmenter, build_transforms
from benchbox.engine.device import device_name
from benchbox.hooks.manager import get_registry

HERE = Path(__file__).resolve().parent
NAMES = ["flip", "rot90", "affine", "intensity", "gamma", "noise"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    reg = get_registry()
    torch.manual_seed(0)
    fusion = reg.get("fusion", "dual").build()
    seg = reg.get("segmenter", "attunet").build(in_channels=1, num_classes=2)
    seg_loss, fusion_loss = reg.get("loss", "hybrid").build(), reg.get("loss", "fusion").build()
    params = list(fusion.parameters()) + list(seg.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    augment = Augmenter(
        build_transforms(reg, NAMES, {n: {"p": 1.0} for n in NAMES}), seed=0, device="cpu"
    )
    g = torch.Generator().manual_seed(0)
    batch = {
        "a": torch.rand(16, 1, 64, 64, generator=g),
        "b": torch.rand(16, 1, 64, 64, generator=g),
        "mask": (torch.rand(16, 64, 64, generator=g) > 0.8).long(),
    }

    def step(augmented: bool) -> None:
        b = augment(dict(batch)) if augmented else batch
        opt.zero_grad()
        fused = fusion(b["a"], b["b"])
        loss = seg_loss(seg(fused), b["mask"]) + 0.1 * fusion_loss(fused, b["a"], b["b"])
        loss.backward()
        opt.step()

    def timed(fn, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1000

    step(True), step(False)  # warm-up
    load_before = os.getloadavg()
    plain, augmented, alone = [], [], []
    for _ in range(args.rounds):
        plain.append(timed(lambda: step(False), args.steps))
        augmented.append(timed(lambda: step(True), args.steps))
        alone.append(timed(lambda: augment(dict(batch)), args.steps))
    load_after = os.getloadavg()
    p, a, o = (statistics.median(x) for x in (plain, augmented, alone))
    text = f"""# Augmentation cost per training step

`python benchmarks/augment_speed.py --rounds {args.rounds} --steps {args.steps}` on
{device_name(torch.device("cpu"))}, {platform.system()} {platform.machine()}; python
{platform.python_version()}, torch {torch.__version__}.

Load average (1, 5, 15 min) before: {[round(x, 2) for x in load_before]}, after:
{[round(x, 2) for x in load_after]} on {os.cpu_count()} cores: the machine was shared
with other jobs, so absolute times are inflated; the ratio is measured side by side
(interleaved rounds in one process) and is the number to read.

One joint step of the quick recipe (dual + attunet, batch 16, 64x64, float32, forward,
backward, AdamW), with and without all six built-in transforms at p=1
({", ".join(NAMES)}), medians over {args.rounds} rounds of {args.steps} steps:

| | median ms per step | per round (ms) |
|---|---|---|
| training step | {p:.1f} | {", ".join(f"{x:.1f}" for x in plain)} |
| training step + augmentation | {a:.1f} | {", ".join(f"{x:.1f}" for x in augmented)} |
| augmentation alone | {o:.2f} | {", ".join(f"{x:.2f}" for x in alone)} |

Augmentation adds {100 * (a - p) / p:.1f}% to a step (the augmentation alone is
{100 * o / p:.1f}% of a plain step). The transforms are batched torch ops
(`torch.where`, `torch.rot90`, `F.affine_grid` + `F.grid_sample`) on the training
device, with no per-sample Python loop.
"""
    out = HERE / "results" / "augment_speed.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
