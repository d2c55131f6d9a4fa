"""Teacher against student inference speed, eager PyTorch and ONNX, side by side.

    python benchmarks/distill_speed.py --teacher RUN_DIR --student RUN_DIR
        [--rounds 3] [--out benchmarks/results/distill_speed]

For the "ResNet50 to MobileNetV3, 3x faster" claim (``leaderboards/reference/claims.md``,
section 6). Only the public commands are timed, each in its own process, the teacher's
and the student's alternating within every round (the order swapped each round), so
both see the same machine load:

* ``benchbox bench --fusion none --seg smp-unet --seg-opt encoder=E --mode infer`` for
  each encoder, at the training size (32x32, batch 16) and at 256x256 (batch 1, one
  image at a time): eager PyTorch, float32, the machine's threads;
* ``benchbox export RUN_DIR`` of the teacher run and of the student run: the pipeline
  as an ONNX graph (dynamic batch, the run's 32x32), its parity with eager PyTorch, and
  eager against onnxruntime on 64 test images, interleaved (its own median of 3).

Then, as a cross-check less exposed to the load of other processes, the same four
forward passes in this one process, interleaved by
:func:`benchbox.engine.timing.compare_speed` (the function ``benchbox export`` times
with; order rotated each round, medians): both runs' models restored by
:func:`benchbox.engine.restore.load_run` (eager) and both runs' exported ONNX graphs
(onnxruntime), on 64 images at 32x32, and the two eager models on one 256x256 image.

Reported: the median over rounds of each figure and the teacher/student ratios. The
load average is recorded before and after: the machine is shared with other work, so
the ratios measured side by side are what counts, not the absolute images/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: (image size, batch) of the eager ``benchbox bench`` measurements.
BENCH_SHAPES = ((32, 16), (256, 1))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _benchbox(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "benchbox", *args], check=True, capture_output=True)


def bench(encoder: str, size: int, batch: int, out: Path) -> dict[str, Any]:
    """One ``benchbox bench`` of smp-unet with ``encoder``: its throughput row."""
    _benchbox(
        "bench", "--fusion", "none", "--seg", "smp-unet", "--seg-opt", f"encoder={encoder}",
        "--image-size", str(size), "--batch-size", str(batch), "--mode", "infer",
        "--warmup", "5", "--steps", "20", "--out", str(out),
    )  # fmt: skip
    with (out / "leaderboards" / "throughput-cpu.csv").open() as fh:
        row = list(csv.DictReader(fh))[-1]
    return {k: row[k] for k in ("infer_img_s", "seg_params", "seg_gflops", "threads")}


def export(run_dir: Path, out: Path) -> dict[str, Any]:
    """One ``benchbox export`` of a run: parity and eager/onnxruntime images/s."""
    _benchbox("export", str(run_dir), "--out", str(out), "--rounds", "3", "--test-images", "64")
    report = json.loads((out / "export.json").read_text())
    return {
        "eager_img_s": report["speed"]["images_per_s"]["eager"],
        "onnx_img_s": report["speed"]["images_per_s"]["onnx"],
        "parity": max(v for g in report["graphs"] for v in g["parity"].values()),
        "threads": report["threads"],
    }


def cross_check(runs: dict[str, Path], tmp: Path, rounds: int) -> dict[str, Any]:
    """Eager and ONNX images/s of both runs, interleaved in this process."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from benchbox.engine.restore import load_run
    from benchbox.engine.timing import compare_speed

    threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    runners: dict[str, Any] = {}
    for role, path in runs.items():
        run = load_run(path)

        def forward(inputs: Any, model: Any = run.segmenter) -> None:
            a, b = (torch.from_numpy(x) for x in inputs)
            with torch.inference_mode():
                model(torch.cat([a, b], dim=1))

        runners[f"{role} eager"] = forward
        graph = tmp / f"export-{role}-0" / "pipeline.onnx"
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        runners[f"{role} onnx"] = lambda inputs, s=session: s.run(
            None, {"a": inputs[0], "b": inputs[1]}
        )
    rng = np.random.default_rng(0)
    small = [rng.random((64, 1, 32, 32), dtype=np.float32) for _ in range(2)]
    large = [rng.random((1, 1, 256, 256), dtype=np.float32) for _ in range(2)]
    at_32 = compare_speed(runners, small, rounds=rounds)
    at_256 = compare_speed({k: v for k, v in runners.items() if "eager" in k}, large, rounds)
    return {"threads": threads, "32": at_32, "256": at_256}


def encoder_of(run_dir: Path) -> str:
    return str(json.loads((run_dir / "config.json").read_text())["seg_opts"]["encoder"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/distill_speed")
    args = parser.parse_args()
    runs = {"teacher": args.teacher, "student": args.student}
    encoders = {role: encoder_of(path) for role, path in runs.items()}
    samples: dict[str, list[dict[str, Any]]] = {}
    load_before = os.getloadavg()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["teacher", "student"] if r % 2 == 0 else ["student", "teacher"]
            for size, batch in BENCH_SHAPES:
                for role in order:
                    out = Path(tmp) / f"bench-{role}-{size}-{r}"
                    row = bench(encoders[role], size, batch, out)
                    samples.setdefault(f"{role} eager {size}", []).append(row)
                    print(role, size, row, flush=True)
            for role in order:
                row = export(runs[role], Path(tmp) / f"export-{role}-{r}")
                samples.setdefault(f"{role} export", []).append(row)
                print(role, "export", row, flush=True)
        interleaved = cross_check(runs, Path(tmp), args.rounds * 2)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "interleaved": interleaved,
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": round(time.time() - start, 1),
        "runs": {role: str(path) for role, path in runs.items()},
        "encoders": encoders,
        "samples": samples,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    rows = ratios(result)
    with out.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = report(result)
    out.with_suffix(".md").write_text(text)
    print(text)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measurement: the teacher's and the student's images/s and their ratio."""
    s = result["samples"]
    rows: list[dict[str, Any]] = []

    def add(what: str, engine: str, size: int, batch: int, t: float, st: float) -> None:
        rows.append(
            {
                "measurement": what,
                "engine": engine,
                "image_size": size,
                "batch": batch,
                "teacher_img_s": round(t, 2),
                "student_img_s": round(st, 2),
                "student_over_teacher": round(st / t, 3),
            }
        )

    for size, batch in BENCH_SHAPES:
        t = _median(s[f"teacher eager {size}"], "infer_img_s")
        st = _median(s[f"student eager {size}"], "infer_img_s")
        add("benchbox bench (own process each)", "eager", size, batch, t, st)
    for key, engine in (("eager_img_s", "eager"), ("onnx_img_s", "onnxruntime")):
        t, st = _median(s["teacher export"], key), _median(s["student export"], key)
        add("benchbox export (own process each)", engine, 32, 64, t, st)
    inter = result["interleaved"]
    for size, batch, kinds in ((32, 64, ("eager", "onnx")), (256, 1, ("eager",))):
        ips = inter[str(size)]["images_per_s"]
        for kind in kinds:
            engine = "onnxruntime" if kind == "onnx" else "eager"
            t, st = ips[f"teacher {kind}"], ips[f"student {kind}"]
            add("interleaved in one process", engine, size, batch, t, st)
    return rows


def report(result: dict[str, Any]) -> str:
    """The medians and ratios as Markdown (also written as ``<out>.md``)."""
    s = result["samples"]
    threads = result["interleaved"]["threads"]
    load = ", ".join(f"{x:.2f}" for x in (*result["load_before"], *result["load_after"]))
    lines = [
        "# Teacher (smp-unet, ResNet50) against student (smp-unet, MobileNetV3-Large): "
        "inference speed on this CPU",
        "",
        f"Made by `{result['command']}` ({result['seconds']:.0f} s). CPU: {result['cpu']}, "
        f"{result['cores']} logical cores, {threads} thread(s) for torch and onnxruntime. "
        f"Load average (1, 5, 15 min) before and after: {load}. The machine is shared: "
        "the ratios, measured side by side, are what counts, not the absolute images/s. "
        "Medians over rounds; the teacher's and the student's measurements alternate.",
        "",
        f"Runs: teacher `{result['runs']['teacher']}`, student `{result['runs']['student']}`.",
        "",
        "| model | encoder | parameters (segmenter) | GFLOPs 32x32 | GFLOPs 256x256 |",
        "|---|---|---|---|---|",
    ]
    for role in ("teacher", "student"):
        small, large = s[f"{role} eager 32"][0], s[f"{role} eager 256"][0]
        lines.append(
            f"| {role} | {result['encoders'][role]} | {int(small['seg_params']):,} | "
            f"{float(small['seg_gflops']):.3f} | {float(large['seg_gflops']):.2f} |"
        )
    t_params = int(s["teacher eager 32"][0]["seg_params"])
    st_params = int(s["student eager 32"][0]["seg_params"])
    lines += [
        "",
        f"Teacher / student: {t_params / st_params:.2f}x the parameters.",
        "",
        "| measurement | engine | size | batch | teacher img/s | student img/s "
        "| student / teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ratios(result):
        lines.append(
            f"| {row['measurement']} | {row['engine']} | {row['image_size']}x{row['image_size']} "
            f"| {row['batch']} | {row['teacher_img_s']:.1f} | {row['student_img_s']:.1f} "
            f"| {row['student_over_teacher']:.2f}x |"
        )
    parity = max(r["parity"] for role in ("teacher", "student") for r in s[f"{role} export"])
    lines += ["", f"ONNX parity (max |onnxruntime - eager| over both runs' graphs): {parity:.1e}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
