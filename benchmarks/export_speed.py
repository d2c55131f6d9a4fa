"""Exported ONNX (onnxruntime) against eager PyTorch for the default pipeline.

    python benchmarks/export_speed.py RUN_DIR [--threads 1 2] [--rounds 7]
        [--out benchmarks/results/export_speed]

``RUN_DIR`` is a run of the default pipeline (``dual`` + ``attunet``, quick preset,
64x64), e.g. from ``benchbox run --epochs 1 --fusion-epochs 1``. For each thread count
(torch's and onnxruntime's alike) it calls :func:`benchbox.deploy.export.export_run`: the
pipeline is exported, run back on 64 test images (max abs difference to eager), and
eager and onnxruntime are timed side by side on one batch of 64, interleaved, the
median over ``--rounds`` rounds reported. The load average is recorded before and after:
the machine is shared, so the ratio measured in one process is what counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> None:
    import onnxruntime
    import torch

    from benchbox.deploy.export import export_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/export_speed"))
    args = parser.parse_args()

    rows = []
    load_before = os.getloadavg()
    for threads in args.threads:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            report = export_run(args.run_dir, out=tmp, rounds=args.rounds, test_images=64)
        ips = report.speed["images_per_s"]
        rows.append(
            {
                "threads": threads,
                "eager_img_s": ips["eager"],
                "onnx_img_s": ips["onnx"],
                "speedup": ips["onnx"] / ips["eager"],
                "max_abs_diff": report.max_abs_diff,
                "per_round": report.speed["rounds"],
                "batch": report.speed["batch"],
                "image_size": report.image_size,
                "axes": report.graphs[0].axes,
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_round"}))
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "run": args.run_dir.name,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Exported ONNX vs eager PyTorch, default pipeline (dual + attunet, 64x64)",
        "",
        f"`python benchmarks/export_speed.py RUN_DIR`, {result['time']}, {result['machine']['cpu']}"
        f" ({result['machine']['cores']} cores, shared by other jobs: load average "
        f"{load_before[0]:.1f} before, {result['machine']['load_average_after'][0]:.1f} after),"
        f" torch {torch.__version__}, onnxruntime {onnxruntime.__version__}.",
        "",
        "Batch of 64 test images; eager and onnxruntime timed side by side in one process, "
        f"interleaved, median of {args.rounds} rounds; both use the same thread count.",
        "",
        "| threads | eager img/s | onnxruntime img/s | speed-up | max abs diff |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['eager_img_s']:.1f} | {r['onnx_img_s']:.1f} | "
            f"{r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
