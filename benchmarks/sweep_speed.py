"""Sweep speed: ``--jobs 2`` vs ``--jobs 1``, and what a run costs beyond its own work.

    python benchmarks/sweep_speed.py [--repeats 2] [--runs 4] [--epochs 1]
        [--image-size 64] [--n-train 64] [--n-eval 16] [--overhead-runs 4]
        [--ray-runs 3] [--fixed-repeats 5] [--skip-process] [--skip-ray]
        [--out benchmarks/results/sweep_speed]

Targets (issue 26): a sweep of 4 short runs (``--seg attunet --epochs 1
--fusion-epochs 1 --data-opt n_train=64 --data-opt n_val=16 --data-opt n_test=16``) is
at least 1.7x faster with ``--jobs 2`` than with ``--jobs 1`` on a 2-core machine; a
local worker costs at most 1 s per run beyond the run's own work, and Ray at most 1.5 s.
Every other setting of the runs is benchbox's default, as in that grid (the defaults
``--image-size 64 --batch-size 16`` and a CPU in float32 are spelled out).

1. **Jobs.** ``benchbox sweep --fusion dual --seg attunet --seed 0,1,2,3 ...`` as a user
   types it (a subprocess, a fresh output folder each time), with ``--jobs 1`` and
   ``--jobs 2``, for each way of starting workers (``--executor-opt start=forkserver``,
   the default, and ``start=process``, a fresh Python per run as before), alternating in
   ABBA order over ``--repeats`` so that a change of the machine's load hits all alike;
   the speed-up is the ratio of the median wall times.
   A sweep's **fixed cost** (``--fixed-repeats``), which bounds that ratio: the wall
   time of a sweep of one minimal run, less the run's job as its ledger times it.
2. **A local worker's cost per run.** ``--overhead-runs`` runs through one
   ``LocalExecutor(jobs=1).run`` (as a sweep's driver calls it), for each start method
   in turn. Per run: ``wall_s`` from the executor saying it started to saying it ended;
   ``job_s``, the worker's own time for the job (building the dataset and models, then
   the run: everything ``benchbox run`` does once Python and torch are loaded);
   ``run_s``, the run's wall time as its record says (``metrics.json``). The cost
   beyond the run's own work is ``wall_s - job_s``: starting the process, its imports,
   handing the job over and the outcome back. The forkserver's start (once per sweep)
   falls on the first run and is reported apart.
3. **Ray.** A local Ray instance with 2 CPUs is started first (timed apart, excluded).
   One warm-up run through Ray (its worker's forkserver starts), then the same one-run
   job alternates (ABBA) between the Ray executor, called as the driver calls it
   (``executor.run([job], events, stop)``, one run at a time, ``cpus_per_run=2``), and a
   local worker forked from a warm forkserver (``run_worker``). Ray's cost per run is
   ``wall_s - job_s``; Ray's own share is that minus the local worker's median.

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

from metrics_speed import cpu_name, cpu_seconds

STARTS = ("forkserver", "process")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The runs' settings, shared by the three parts."""
    return {
        "fusion": "dual",
        "seg": "attunet",
        "image_size": args.image_size,
        "batch_size": 16,
        "fusion_epochs": 1,
        "epochs": args.epochs,
        "device": "cpu",
        "amp": "off",
        "data_opts": {"n_train": args.n_train, "n_val": args.n_eval, "n_test": args.n_eval},
    }


def sweep_args(args: argparse.Namespace) -> list[str]:
    s = settings(args)
    seeds = ",".join(str(i) for i in range(args.runs))
    return [
        "--fusion", s["fusion"], "--seg", s["seg"], "--seed", seeds,
        "--image-size", str(s["image_size"]), "--batch-size", str(s["batch_size"]),
        "--fusion-epochs", "1", "--epochs", str(s["epochs"]), "--device", "cpu", "--amp", "off",
        *(x for k, v in s["data_opts"].items() for x in ("--data-opt", f"{k}={v}")),
    ]  # fmt: skip


def time_sweep(
    args: argparse.Namespace, jobs: int, start: str, threads: int = 0
) -> tuple[float, float]:
    """Wall seconds of one ``benchbox sweep``, and the CPU seconds of its process tree;
    raises if a run failed. ``threads``: torch threads per run (0: the executor's
    default, cores / jobs)."""
    options = ["--jobs", str(jobs), "--executor-opt", f"start={start}"]
    if threads:
        options += ["--executor-opt", f"threads={threads}"]
    with tempfile.TemporaryDirectory() as out:
        return run_sweep_command([*sweep_args(args), *options], out)


def run_sweep_command(options: list[str], out: str) -> tuple[float, float]:
    """Run ``benchbox sweep OPTIONS -o OUT`` as a user types it: its wall seconds, and
    the CPU seconds of its process tree (every process of it is waited for by its
    parent); raises if it failed."""
    import resource

    cmd = [sys.executable, "-m", "benchbox", "sweep", *options, "-o", out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


class _Events:
    """Records when the executor says each job started and ended, and its outcome."""

    def __init__(self) -> None:
        self.times: dict[int, list[float]] = {}
        self.outcomes: dict[int, Any] = {}

    def started(self, job: Any) -> None:
        self.times[job.index] = [time.perf_counter()]

    def ended(self, job: Any, outcome: Any) -> None:
        self.times[job.index].append(time.perf_counter())
        self.outcomes[job.index] = outcome


def make_job(args: argparse.Namespace, out: Path, seed: int, threads: int) -> Any:
    from benchbox import config as cfg
    from benchbox.sweep.driver import new_run_id, portable
    from benchbox.sweep.job import Job

    config = portable(cfg.resolve(None, None, {**settings(args), "seed": seed, "out": str(out)}))
    return Job(
        index=seed,
        config_hash=config.hash(),
        config=config.to_dict(),
        threads=threads,
        log_path=str(out / f"{seed}.log"),
        run_id=new_run_id(config),
    )


def measured(out: Path, job: Any, wall: float, outcome: Any) -> dict[str, float]:
    if outcome.status != "completed":
        raise SystemExit(f"run {job.index} failed: {outcome.error}")
    record = json.loads((out / "runs" / outcome.run_id / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "job_s": outcome.wall_s,
        "run_s": float(record["wall_s"]),
        "beyond_job_s": wall - outcome.wall_s,
        "beyond_run_s": wall - float(record["wall_s"]),
    }


def local_overhead(args: argparse.Namespace, start: str) -> list[dict[str, float]]:
    """``--overhead-runs`` runs through one local executor, one at a time."""
    from benchbox_plugins.executors.local import LocalExecutor

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        executor = LocalExecutor(jobs=1, start=start)
        jobs = [make_job(args, out, seed, executor.threads) for seed in range(args.overhead_runs)]
        events = _Events()
        executor.run(jobs, events, threading.Event())
        return [
            measured(out, job, events.times[job.index][1] - events.times[job.index][0], o)
            for job in jobs
            for o in [events.outcomes[job.index]]
        ]


#: The smallest run a sweep can hold: what is left of a sweep's wall time beyond it is
#: the sweep's fixed cost (start, imports before the first run can start, summary, exit).
MINIMAL = [
    "--fusion", "dual", "--seg", "attunet", "--seed", "0", "--epochs", "1",
    "--fusion-epochs", "0", "--image-size", "32", "--examples", "0", "--device", "cpu",
    "--data-opt", "n_train=2", "--data-opt", "n_val=2", "--data-opt", "n_test=2",
]  # fmt: skip


def fixed_cost(repeats: int) -> list[dict[str, float]]:
    """``benchbox sweep`` of one minimal run, ``repeats`` times: its wall seconds, the
    run's job as the ledger times it, and the difference (paid once per sweep, whatever
    ``--jobs``)."""
    from benchbox.sweep.ledger import read_ledger

    rows = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            wall, _ = run_sweep_command([*MINIMAL, "--jobs", "1"], out)
            (ledger,) = Path(out).glob("sweeps/*/ledger.csv")
            job = float(read_ledger(ledger)[0].wall_s or 0.0)
        rows.append({"wall_s": wall, "job_s": job, "fixed_s": wall - job})
    return rows


def ray_overhead(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from benchbox.sweep.forkserver import ForkServer
    from benchbox.sweep.process import run_worker
    from benchbox_plugins.executors.ray import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    ray_executor = RayExecutor(cpus_per_run=2)
    rays: list[dict[str, float]] = []
    locals_: list[dict[str, float]] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            ForkServer(threads=2) as server,
        ):
            out = Path(tmp)

            def through_ray(seed: int) -> dict[str, float]:
                job = make_job(args, out, seed, 2)
                events = _Events()
                t = time.perf_counter()
                ray_executor.run([job], events, threading.Event())
                return measured(out, job, time.perf_counter() - t, events.outcomes[seed])

            def local(seed: int) -> dict[str, float]:
                job = make_job(args, out, seed, 2)
                t = time.perf_counter()
                outcome = run_worker(job, threading.Event(), server=server)
                return measured(out, job, time.perf_counter() - t, outcome)

            through_ray(100)  # warm-up: Ray's first worker and its forkserver start
            local(101)  # and the local forkserver
            for r in range(args.ray_runs):
                order = [(through_ray, rays), (local, locals_)]
                for fn, into in order if r % 2 == 0 else order[::-1]:
                    into.append(fn(r))
                print(
                    f"ray run {r + 1}: ray {rays[-1]['wall_s']:.1f} s (job "
                    f"{rays[-1]['job_s']:.1f} s), local {locals_[-1]['wall_s']:.1f} s "
                    f"(job {locals_[-1]['job_s']:.1f} s)",
                    flush=True,
                )
    finally:
        ray.shutdown()
    local_beyond = statistics.median(m["beyond_job_s"] for m in locals_)
    for m in rays:
        m["ray_only_s"] = m["beyond_job_s"] - local_beyond
    return {
        "ray_start_s": start_s,
        "ray": rays,
        "local": locals_,
        "median_beyond_job_s": statistics.median(m["beyond_job_s"] for m in rays),
        "max_beyond_job_s": max(m["beyond_job_s"] for m in rays),
        "median_local_beyond_job_s": local_beyond,
        "median_ray_only_s": statistics.median(m["ray_only_s"] for m in rays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="ABBA pairs of sweeps")
    parser.add_argument("--runs", type=int, default=4, help="runs (seeds) per sweep")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--n-eval", type=int, default=16, help="n_val and n_test")
    parser.add_argument("--overhead-runs", type=int, default=4)
    parser.add_argument("--ray-runs", type=int, default=3)
    parser.add_argument(
        "--fixed-repeats", type=int, default=5, help="sweeps of one minimal run (0: skip)"
    )
    parser.add_argument("--skip-process", action="store_true", help="forkserver only")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--threads",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 1],
        help="torch threads per run, comma-separated; 0 = the default (cores / jobs)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sweep_speed"
    )
    args = parser.parse_args()
    import torch

    starts = STARTS[:1] if args.skip_process else STARTS
    load_before = [round(v, 2) for v in os.getloadavg()]
    begin = cpu_seconds()
    # A variant: a way of starting workers, and the torch threads per run (0: the
    # executor's default, cores / jobs; 1: one each, so that --jobs 1 and --jobs 2 give
    # every run the same compute and the ratio measures the executor alone).
    variants = [(st, t) for st in starts for t in args.threads]
    names = {v: label(*v) for v in variants}
    walls: dict[str, dict[int, list[float]]] = {names[v]: {1: [], 2: []} for v in variants}
    cpus: dict[str, dict[int, list[float]]] = {names[v]: {1: [], 2: []} for v in variants}
    for r in range(args.repeats):
        order = [(v, j) for v in variants for j in (1, 2)]
        for (start, threads), jobs in order if r % 2 == 0 else order[::-1]:
            wall, cpu = time_sweep(args, jobs, start, threads)
            name = names[(start, threads)]
            walls[name][jobs].append(wall)
            cpus[name][jobs].append(cpu)
            print(f"sweep {r + 1}: {name} --jobs {jobs} {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)
    speedups = {n: statistics.median(w[1]) / statistics.median(w[2]) for n, w in walls.items()}
    fixed = fixed_cost(args.fixed_repeats)
    if fixed:
        print(f"fixed cost {_median(fixed, 'fixed_s'):.2f} s per sweep", flush=True)
    overhead: dict[str, list[dict[str, float]]] = {}
    for start in starts:
        overhead[start] = local_overhead(args, start)
        print(
            f"{start}: beyond the job "
            + ", ".join(f"{m['beyond_job_s']:.2f}" for m in overhead[start])
            + " s",
            flush=True,
        )
    ray = None if args.skip_ray else ray_overhead(args)
    end = cpu_seconds()
    others = max(0.0, (end[0] - begin[0]) - (end[1] - begin[1])) / (end[2] - begin[2])
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "sweep_command": "benchbox sweep " + " ".join(sweep_args(args)) + " --jobs N",
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "other_processes_cores": round(others, 2),
        "sweep_wall_s": {s: {f"jobs{k}": v for k, v in w.items()} for s, w in walls.items()},
        "sweep_cpu_s": {s: {f"jobs{k}": v for k, v in w.items()} for s, w in cpus.items()},
        "speedup_jobs2_over_jobs1": speedups,
        "fixed": fixed,
        "minimal_sweep": "benchbox sweep " + " ".join(MINIMAL) + " --jobs 1",
        "local_per_run": overhead,
        "ray": ray,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(
        "speed-up "
        + ", ".join(f"{s} {v:.2f}x" for s, v in speedups.items())
        + f"; wrote {args.out.with_suffix('.md')}"
    )


def label(start: str, threads: int) -> str:
    """A variant's name in the tables."""
    return f"{start}, {'cores / jobs' if threads == 0 else f'{threads} thread'} per run"


def _median(rows: list[dict[str, float]], key: str, skip_first: bool = False) -> float:
    values = [m[key] for m in (rows[1:] if skip_first and len(rows) > 1 else rows)]
    return statistics.median(values)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    flags = (
        f"--repeats {s['repeats']} --runs {s['runs']} --epochs {s['epochs']} "
        f"--image-size {s['image_size']} --n-train {s['n_train']} --n-eval {s['n_eval']} "
        f"--overhead-runs {s['overhead_runs']} --ray-runs {s['ray_runs']}"
        + f" --fixed-repeats {s.get('fixed_repeats', 0)}"
        + (" --skip-process" if s["skip_process"] else "")
        + (" --skip-ray" if s["skip_ray"] else "")
        + f" --threads {','.join(map(str, s['threads']))}"
    )
    starts = list(report["sweep_wall_s"])  # the variants' names
    text = (
        f"""# Sweep speed: `--jobs 2` vs `--jobs 1`, and a run's cost beyond its own work

`python benchmarks/sweep_speed.py {flags}` on {report["cpu"]}, {report["cores"]} cores, \
torch {report["torch"]}. Load average (1, 5, 15 min) before: {report["load_before"]}, \
after: {report["load_after"]}; other processes used {report["other_processes_cores"]} \
of the {report["cores"]} cores on average during the benchmark (its own process tree \
excluded): the machine was shared, and every figure below carries that noise.

## {s["runs"]} runs, `--jobs 1` vs `--jobs 2` (target: at least 1.7x)

`{report["sweep_command"]} --executor-opt start=S`, each sweep a fresh process and
output folder, in ABBA order (one session, one machine). `forkserver` (the default)
forks each run from a server that imported torch and benchbox once per sweep (on Linux
the spare forked from the driver as its first step, `benchbox/sweep/spare.py`);
`process` starts a fresh Python per run (the executor before issue 26). "cores / jobs"
is the default number of torch threads per run (`--jobs 1` gives its one run both
cores); "1 thread" is `--executor-opt threads=1`, the same compute per run with either
`--jobs`, so that the ratio measures the executor alone. Wall seconds,
and in brackets the CPU seconds of the sweep's whole process tree (what the work cost,
whatever else ran on the machine).

| repeat | """
        + " | ".join(f"{st} `--jobs {j}` (s)" for st in starts for j in (1, 2))
        + " |\n"
    )
    text += "|---|" + "---|" * (2 * len(starts)) + "\n"
    walls = report["sweep_wall_s"]
    cpus = report["sweep_cpu_s"]
    for i in range(s["repeats"]):
        cells = [
            f"{walls[st][f'jobs{j}'][i]:.1f} (CPU {cpus[st][f'jobs{j}'][i]:.0f})"
            for st in starts
            for j in (1, 2)
        ]
        text += f"| {i + 1} | " + " | ".join(cells) + " |\n"
    text += "\nSpeed-up, ratio of the medians: " + ", ".join(
        f"{st} **{v:.2f}x**" for st, v in report["speedup_jobs2_over_jobs1"].items()
    )
    for t in s["threads"]:
        fs, pr = label("forkserver", t), label("process", t)
        if fs in walls and pr in walls:
            r1, r2 = (
                statistics.median(walls[fs][j]) / statistics.median(walls[pr][j])
                for j in ("jobs1", "jobs2")
            )
            text += (
                f"; {fs}: the forkserver sweep took {r1:.2f}x the time of the fresh-process "
                f"one with `--jobs 1` and {r2:.2f}x with `--jobs 2`"
            )
    text += ".\n"
    for st in starts:
        ratios = [a / b for a, b in zip(walls[st]["jobs1"], walls[st]["jobs2"], strict=True)]
        if len(ratios) > 1:
            text += (
                f"Per repeat (its `--jobs 1` and `--jobs 2` sweeps close in time), {st}: "
                + ", ".join(f"{r:.2f}x" for r in ratios)
                + ".\n"
            )
    fixed = report.get("fixed") or []
    if fixed:
        text += f"""
## A sweep's fixed cost

`{report["minimal_sweep"]}`, {len(fixed)} times: the sweep's wall seconds, the run's
job as its ledger line times it (0.1 s steps), and the difference, which every sweep
pays once whatever `--jobs` (the command's start, the imports before the first run can
fork, the summary and the exit): median **{_median(fixed, "fixed_s"):.2f} s** (each:
{", ".join(f"{m['fixed_s']:.2f}" for m in fixed)}; the sweeps took
{", ".join(f"{m['wall_s']:.2f}" for m in fixed)} s).
"""
    text += f"""
## A local worker's cost per run (target: at most 1 s beyond the run's own work)

{s["overhead_runs"]} runs, one at a time, through one `LocalExecutor(jobs=1).run` per way
of starting workers. Seconds. "job" is the worker's own time for the job (dataset and
models built, then the run); "run" the run's record (`metrics.json` `wall_s`). Run 1
of the forkserver also waits for the server to start (once per sweep).

| start | # | wall | job | run | wall - job | wall - run |
|---|---|---|---|---|---|---|
"""
    for st, rows in report["local_per_run"].items():
        for i, m in enumerate(rows):
            text += (
                f"| {st} | {i + 1} | {m['wall_s']:.2f} | {m['job_s']:.2f} | {m['run_s']:.2f} | "
                f"{m['beyond_job_s']:.2f} | {m['beyond_run_s']:.2f} |\n"
            )
    text += "\n"
    for st, rows in report["local_per_run"].items():
        text += (
            f"- {st}: beyond the job, median **{_median(rows, 'beyond_job_s', True):.2f} s** "
            f"per run after the first (first {rows[0]['beyond_job_s']:.2f} s); beyond the "
            f"record's run time {_median(rows, 'beyond_run_s', True):.2f} s; the job itself "
            f"{_median(rows, 'job_s', True):.2f} s.\n"
        )
    ray = report["ray"]
    if ray:
        text += f"""
## Ray executor, per run (target: at most 1.5 s beyond the run's own work)

Local Ray with 2 CPUs, started in {ray["ray_start_s"]:.1f} s (excluded); one run at a
time (`cpus_per_run=2`), alternating (ABBA) with a local worker forked from a warm
forkserver, after one warm-up run of each. Seconds.

| # | ray | its job | ray - job | local | its job | local - job | Ray's own |
|---|---|---|---|---|---|---|---|
""" + "".join(
            f"| {i + 1} | {m['wall_s']:.2f} | {m['job_s']:.2f} | {m['beyond_job_s']:.2f} | "
            f"{lo['wall_s']:.2f} | {lo['job_s']:.2f} | {lo['beyond_job_s']:.2f} | "
            f"{m['ray_only_s']:.2f} |\n"
            for i, (m, lo) in enumerate(zip(ray["ray"], ray["local"], strict=True))
        )
        text += f"""
Beyond the job, through Ray: median **{ray["median_beyond_job_s"]:.2f} s** (max \
{ray["max_beyond_job_s"]:.2f} s); a local worker's median is \
{ray["median_local_beyond_job_s"]:.2f} s, so Ray's own share is a median \
{ray["median_ray_only_s"]:.2f} s per run.
"""
    return text


if __name__ == "__main__":
    main()
