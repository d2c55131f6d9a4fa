"""Sweep speed: ``--jobs 2`` vs ``--jobs 1``, and the Ray executor's cost per run.

    python benchmarks/sweep_speed.py [--repeats 2] [--ray-runs 3] [--epochs 2]
        [--image-size 64] [--n-train 64] [--skip-ray] [--out benchmarks/results/sweep_speed]

Targets (issue 12): a sweep of 4 small runs is at least 1.6x faster with ``--jobs 2``
than with ``--jobs 1`` on a 2-core machine; the Ray executor adds at most 3 s per run
beyond the run itself, cluster start excluded.

1. **Jobs.** ``benchbox sweep --fusion dual --seg attunet --seed 0,1,2,3 ...`` as a
   user types it (a subprocess, a fresh output folder each time), with ``--jobs 1``
   and ``--jobs 2``, alternating in ABBA order over ``--repeats`` so that a change of the
   machine's load hits both; the speed-up is the ratio of the median wall times.
2. **Ray.** A local Ray instance is started first (its start-up is timed apart and
   excluded). Then the same one-run job alternates (ABBA) between the ``local``
   executor and the ``ray`` executor, each called as the sweep's driver calls it
   (``executor.run([job], events, stop)``), one run at a time. For each Ray run:

   * ``ray_s``: from the call to its return (submission, scheduling, the task, its
     worker process, the result back);
   * ``run_s``: the run's own wall time as its record says (``metrics.json``
     ``wall_s``: training, validation, test, records);
   * ``beyond_run_s = ray_s - run_s``: everything outside the run itself: starting the
     worker process, importing torch, building the dataset and models, and Ray's own
     cost. The local executor pays all of it but the last, so
   * ``ray_only_s`` = ``beyond_run_s`` minus the local executor's median of the same
     (``local_s - run_s``) is what Ray adds on top of a local sweep (the runs' own
     times, which vary with the load, cancel out);
   * ``beyond_job_s = ray_s - worker_s``, where ``worker_s`` is the worker's own time
     for the job (building the dataset and models, then the run: everything
     ``benchbox run`` does once Python and torch are loaded): the executor's cost
     proper, i.e. a fresh process, its imports and Ray.

The load average and the CPU time used by other processes (this benchmark's process
tree excluded) are recorded: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_speed import cpu_name


def machine_cpu() -> tuple[float, float, float]:
    """(busy CPU seconds of the machine, of this process and its waited-for
    descendants, monotonic wall clock) now."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    hz = os.sysconf("SC_CLK_TCK")
    t = os.times()
    mine = t.user + t.system + t.children_user + t.children_system
    return (sum(ticks[:8]) - idle) / hz, mine, time.monotonic()


def sweep_args(args: argparse.Namespace) -> list[str]:
    return [
        "--fusion", "dual", "--seg", "attunet", "--seed", "0,1,2,3",
        "--image-size", str(args.image_size), "--batch-size", "16",
        "--fusion-epochs", "1", "--epochs", str(args.epochs), "--warmup-steps", "2",
        "--examples", "1", "--device", "cpu", "--amp", "off",
        "--data-opt", f"n_train={args.n_train}", "--data-opt", "n_val=8",
        "--data-opt", "n_test=8",
    ]  # fmt: skip


def time_sweep(args: argparse.Namespace, jobs: int) -> float:
    """Wall seconds of one ``benchbox sweep`` with ``--jobs``; raises if a run failed."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "benchbox", "sweep", *sweep_args(args), "--jobs", str(jobs)]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "-o", out], capture_output=True, text=True, encoding="utf-8", check=False
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"sweep --jobs {jobs} failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    return wall


class _Events:
    def __init__(self) -> None:
        self.outcomes: list[Any] = []

    def started(self, job: Any) -> None:
        pass

    def ended(self, job: Any, outcome: Any) -> None:
        self.outcomes.append(outcome)


def one_run(executor: Any, args: argparse.Namespace, out: Path, seed: int) -> dict[str, float]:
    """One job (a run of the jobs comparison) through ``executor`` as the driver runs it:
    its wall time and the run's own."""
    from benchbox import config as cfg
    from benchbox.sweep.executor import Job

    config = cfg.RunConfig(
        fusion="dual",
        seg="attunet",
        seed=seed,
        image_size=args.image_size,
        batch_size=16,
        fusion_epochs=1,
        epochs=args.epochs,
        warmup_steps=2,
        examples=1,
        device="cpu",
        amp="off",
        out=str(out),
        data_opts={"n_train": args.n_train, "n_val": 8, "n_test": 8},
    )
    job = Job(index=seed, config_hash=config.hash(), config=config.to_dict())
    events = _Events()
    t0 = time.perf_counter()
    executor.run([job], events, threading.Event())
    wall = time.perf_counter() - t0
    (outcome,) = events.outcomes
    if outcome.status != "completed":
        raise SystemExit(f"run failed through {type(executor).__name__}: {outcome.error}")
    record = json.loads((out / "runs" / outcome.run_id / "metrics.json").read_text())
    return {"wall_s": wall, "run_s": float(record["wall_s"]), "worker_s": outcome.wall_s}


def ray_overhead(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from benchbox_plugins.executors.local import LocalExecutor
    from benchbox_plugins.executors.ray import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    # One run at a time on both: 2 CPUs per run, 2 torch threads, as --jobs 1 would.
    ray_executor = RayExecutor(cpus_per_run=2)
    local_executor = LocalExecutor(jobs=1)
    rays: list[dict[str, float]] = []
    locals_: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            one_run(ray_executor, args, out, seed=100)  # warm-up: Ray's first worker starts
            for r in range(args.ray_runs):
                order = [ray_executor, local_executor]
                for executor in order if r % 2 == 0 else order[::-1]:
                    m = one_run(executor, args, out, seed=r)
                    (rays if executor is ray_executor else locals_).append(m)
                print(
                    f"ray run {r + 1}: ray {rays[-1]['wall_s']:.1f} s, local "
                    f"{locals_[-1]['wall_s']:.1f} s, the run itself {rays[-1]['run_s']:.1f} s",
                    flush=True,
                )
    finally:
        ray.shutdown()
    for m in locals_:
        m["beyond_run_s"] = m["wall_s"] - m["run_s"]
    local_beyond = statistics.median(m["beyond_run_s"] for m in locals_)
    for m in rays:
        m["beyond_run_s"] = m["wall_s"] - m["run_s"]
        m["ray_only_s"] = m["beyond_run_s"] - local_beyond
    return {
        "ray_start_s": start_s,
        "ray": rays,
        "local": locals_,
        "median_beyond_run_s": statistics.median(m["beyond_run_s"] for m in rays),
        "max_beyond_run_s": max(m["beyond_run_s"] for m in rays),
        "median_ray_only_s": statistics.median(m["ray_only_s"] for m in rays),
        "median_local_beyond_run_s": local_beyond,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="ABBA pairs of sweeps")
    parser.add_argument("--ray-runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sweep_speed"
    )
    args = parser.parse_args()
    import torch

    load_before = [round(v, 2) for v in os.getloadavg()]
    start = machine_cpu()
    walls: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.repeats):
        for jobs in (1, 2) if r % 2 == 0 else (2, 1):
            walls[jobs].append(time_sweep(args, jobs))
            print(f"sweep repeat {r + 1}: --jobs {jobs} {walls[jobs][-1]:.1f} s", flush=True)
    speedup = statistics.median(walls[1]) / statistics.median(walls[2])
    ray = None if args.skip_ray else ray_overhead(args)
    end = machine_cpu()
    others = max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / (end[2] - start[2])
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "sweep_command": "benchbox sweep " + " ".join(sweep_args(args)) + " --jobs N",
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "other_processes_cores": round(others, 2),
        "sweep_wall_s": {f"jobs{k}": v for k, v in walls.items()},
        "speedup_jobs2_over_jobs1": speedup,
        "ray": ray,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"speed-up {speedup:.2f}x; wrote {args.out.with_suffix('.md')}")


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    flags = (
        f"--repeats {s['repeats']} --ray-runs {s['ray_runs']} --epochs {s['epochs']} "
        f"--image-size {s['image_size']} --n-train {s['n_train']}"
        + (" --skip-ray" if s["skip_ray"] else "")
    )
    walls = report["sweep_wall_s"]
    text = f"""# Sweep speed: `--jobs 2` vs `--jobs 1`, and the Ray executor's cost per run

`python benchmarks/sweep_speed.py {flags}` on {report["cpu"]}, {report["cores"]} cores, \
torch {report["torch"]}.

## 4 runs, `--jobs 1` vs `--jobs 2` (target: at least 1.6x)

`{report["sweep_command"]}`, each sweep a fresh process and output folder, in ABBA
order (one session, one machine).

| repeat | `--jobs 1` (s) | `--jobs 2` (s) |
|---|---|---|
""" + "".join(
        f"| {i + 1} | {a:.1f} | {b:.1f} |\n"
        for i, (a, b) in enumerate(zip(walls["jobs1"], walls["jobs2"], strict=True))
    )
    text += f"""
Speed-up (ratio of the medians): **{report["speedup_jobs2_over_jobs1"]:.2f}x**.
"""
    ray = report["ray"]
    if ray:
        text += f"""
## Ray executor, per run (target: at most 3 s beyond the run itself)

Local Ray with 2 CPUs, started in {ray["ray_start_s"]:.1f} s (excluded); one run at a
time (`cpus_per_run=2`), alternating with the local executor (ABBA), after one warm-up
run through Ray. Seconds; "its run" is the wall time the run records (`metrics.json`
`wall_s`: training, validation, test, records); "its job" is the worker's own time for
the job (the dataset and models built, then the run).

| # | ray | its job | its run | ray - job | ray - run | local | local - job | local - run \
| Ray's own |
|---|---|---|---|---|---|---|---|---|---|
""" + "".join(
            f"| {i + 1} | {m['wall_s']:.1f} | {m['worker_s']:.1f} | {m['run_s']:.1f} | "
            f"{m['wall_s'] - m['worker_s']:.1f} | {m['beyond_run_s']:.1f} | "
            f"{lo['wall_s']:.1f} | {lo['wall_s'] - lo['worker_s']:.1f} | "
            f"{lo['beyond_run_s']:.1f} | {m['ray_only_s']:.1f} |\n"
            for i, (m, lo) in enumerate(zip(ray["ray"], ray["local"], strict=True))
        )
        beyond_job = [m["wall_s"] - m["worker_s"] for m in ray["ray"]]
        text += f"""
Beyond the run itself, through Ray: median **{ray["median_beyond_run_s"]:.1f} s** (max \
{ray["max_beyond_run_s"]:.1f} s): a fresh worker process, imports, the dataset and models
built, and Ray's own cost. The local executor's median for the same is \
{ray["median_local_beyond_run_s"]:.1f} s, so Ray's own cost (the difference) is a median \
{ray["median_ray_only_s"]:.1f} s per run.

Against the target (at most 3 s beyond the run itself): counting building the dataset
and models as part of the run (`benchbox run` does both), Ray adds a median
**{statistics.median(beyond_job):.1f} s** (max {max(beyond_job):.1f} s) per run: a fresh
Python process with torch imported (each run has its own process, so that one run's
crash cannot take another down) and Ray's own {ray["median_ray_only_s"]:.1f} s. Counted
from the record's `wall_s` alone it is {ray["median_beyond_run_s"]:.1f} s.
"""
    text += f"""
Load average (1, 5, 15 min) before: {report["load_before"]}, after: {report["load_after"]}; \
other processes used {report["other_processes_cores"]} of the {report["cores"]} cores on \
average during the benchmark (its own process tree excluded).
"""
    return text


if __name__ == "__main__":
    main()
