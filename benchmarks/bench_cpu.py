"""Which options make training faster on this CPU? eager vs channels_last vs
torch.compile vs bf16 autocast for the default models (``dual`` + ``attunet``).

    python benchmarks/bench_cpu.py [--rounds 3] [--image-size 64] [--batch-size 16]
        [--warmup 3] [--steps 10] [--timeout 900] [--out benchmarks/results/bench_cpu]

Each variant is one ``benchbox bench`` measurement in its own subprocess
(:func:`benchbox.bench.grid.run_one`, the grid's code path). The variants are
interleaved, round after round, so a change of machine load hits all of them; the
table gives each variant's median over the rounds and its ratio to eager float32
(the ratio of medians). The load average and the CPU time other processes used during
the run are recorded: the machine may be shared. A variant that exceeds ``--timeout``
(``torch.compile`` can take minutes on a CPU) is reported as timed out, not dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_speed import cpu_name, cpu_seconds

VARIANTS: dict[str, dict[str, Any]] = {
    "eager float32": {},
    "channels_last": {"channels_last": True},
    "torch.compile": {"compile": True},
    "bf16 autocast": {"amp": "bf16"},
}
KEYS = ("train_img_s", "infer_img_s", "train_step_ms_p50", "infer_step_ms_p50", "train_peak_mem_mb")


def main() -> None:
    from benchbox.bench.grid import run_one
    from benchbox.bench.measure import BenchSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_cpu"
    )
    args = parser.parse_args()
    settings = {
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "steps": args.steps,
        "device": "cpu",
        "amp": "off",
    }
    load_before = [round(v, 2) for v in os.getloadavg()]
    start = cpu_seconds()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    errors: dict[str, list[str]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for name, change in VARIANTS.items():
            t0 = time.monotonic()
            outcome = run_one(BenchSpec.make(**settings, **change), args.timeout)
            took = time.monotonic() - t0
            if outcome.row is not None:
                rows[name].append(outcome.row)
                got = f"train {outcome.row['train_img_s']:.2f} img/s"
            else:
                errors[name].append(outcome.error or "")
                got = f"failed: {outcome.error}"
            print(f"round {r + 1} {name}: {got} ({took:.0f} s)", flush=True)
    end = cpu_seconds()
    others = max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / (end[2] - start[2])
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "other_processes_cores": round(others, 2),
        "wall_s": round(end[2] - start[2], 1),
        "variants": {},
    }
    for name in VARIANTS:
        got = rows[name]
        entry: dict[str, Any] = {"rounds": len(got), "errors": errors[name]}
        for key in KEYS:
            values = [row[key] for row in got if row.get(key) is not None]
            entry[key] = statistics.median(values) if values else None
            entry[key + "_all"] = values
        if got:
            entry["warmup_s"] = statistics.median(row["train_warmup_s"] for row in got)
            entry["torch_version"] = got[0]["torch_version"]
            entry["device"] = got[0]["device"]
        report["variants"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out.with_suffix('.md')}")


def _cell(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    eager = report["variants"]["eager float32"]
    lines = [
        "# Training and inference speed on this CPU: which options help",
        "",
        f"`python benchmarks/bench_cpu.py --rounds {s['rounds']} --image-size {s['image_size']} "
        f"--batch-size {s['batch_size']} --warmup {s['warmup']} --steps {s['steps']} "
        f"--timeout {s['timeout']:g}`: `dual` + `attunet` (default widths), synthetic input, "
        f"{report['cpu']}, {report['cores']} cores. Each variant is one `benchbox bench` in "
        "its own process; variants interleaved round after round; medians over the rounds.",
        "",
        f"Load average (1, 5, 15 min) before: {report['load_before']}, after: "
        f"{report['load_after']}. Other processes used {report['other_processes_cores']} of "
        f"the {report['cores']} cores on average during the {report['wall_s']:.0f} s run (this "
        "benchmark's own CPU time excluded).",
        "",
        "| variant | rounds | train img/s | x eager | train step p50 ms | infer img/s "
        "| x eager | infer step p50 ms | train peak MB | warm-up s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in report["variants"].items():

        def ratio(key: str, v: dict[str, Any] = v) -> str:
            if v.get(key) is None or not eager.get(key):
                return "-"
            return f"{v[key] / eager[key]:.2f}"

        lines.append(
            f"| {name} | {v['rounds']} | {_cell(v['train_img_s'])} | {ratio('train_img_s')} "
            f"| {_cell(v['train_step_ms_p50'], 0)} | {_cell(v['infer_img_s'])} "
            f"| {ratio('infer_img_s')} | {_cell(v['infer_step_ms_p50'], 0)} "
            f"| {_cell(v['train_peak_mem_mb'], 0)} | {_cell(v.get('warmup_s'), 0)} "
            f"| {'; '.join(v['errors']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
