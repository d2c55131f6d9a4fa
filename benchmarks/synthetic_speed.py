"""How long the synthetic phantom takes to generate: 1,000 slices of 128x128.

    python benchmarks/synthetic_speed.py [--repeats 5]

Target: under 2 s on a 2-core CPU. Writes ``benchmarks/results/synthetic_speed.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from benchbox.data.synthetic import generate
from benchbox.engine.device import device_name

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    generate(4, 128)  # imports and first-call costs out of the timing
    load_before = os.getloadavg()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        generate(1000, 128, seed=0, split="train")
        times.append(time.perf_counter() - t0)
    load_after = os.getloadavg()
    cpu = device_name(torch.device("cpu"))
    text = "\n".join(
        [
            "# Synthetic phantom: generation speed",
            "",
            f"`python benchmarks/synthetic_speed.py --repeats {args.repeats}` on {cpu}; "
            f"Python {platform.python_version()}.",
            "",
            "1,000 slices of 128x128 (CT, MRI, mask), one process, target under 2 s: "
            f"median **{statistics.median(times):.2f} s**, min {min(times):.2f} s, "
            f"max {max(times):.2f} s over {args.repeats} repeats.",
            "",
            f"Load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}.",
            "",
        ]
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "synthetic_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
