"""What the side-by-side benchmarks share: the ABBA order of their measurements, and
what they record about the session (the machine, torch, and the load it was under).

Speed targets are ratios measured in one session on a noisy machine, so each
benchmark alternates its two sides (A B, B A, ...: a steady drift of the load cancels
over two repeats) and records the load average and the CPU time other processes used.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from typing import Any

from metrics_speed import cpu_name, cpu_seconds

__all__ = ["Session", "abba", "run_vs_loop", "run_vs_loop_text"]


def abba(
    measures: Mapping[str, Callable[[], float]],
    repeats: int,
    show: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> dict[str, list[float]]:
    """Each of the two ``measures`` ``repeats`` times, in the order A B, B A, A B, ...;
    their values by name. ``show(repeat, values)`` is called after each repeat."""
    names = list(measures)
    values: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            values[name].append(measures[name]())
        if show is not None:
            show(r, values)
    return values


class Session:
    """The session's record: make it before the measurements, call :meth:`fields`
    after them."""

    def __init__(self) -> None:
        self.load_before = [round(v, 2) for v in os.getloadavg()]
        self.start = cpu_seconds()

    def fields(self) -> dict[str, Any]:
        """cpu, cores, torch and its threads, the load average before and after, and the
        cores other processes used on average meanwhile (this process tree excluded)."""
        import torch

        end = cpu_seconds()
        busy, own, wall = (e - s for e, s in zip(end, self.start, strict=True))
        return {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_before": self.load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "other_processes_cores": round(max(0.0, busy - own) / wall, 2),
        }


def run_vs_loop(
    run: Callable[[], float], loop: Callable[[], float], repeats: int, unit: str, digits: int
) -> dict[str, Any]:
    """A rate of ``benchbox run`` against the same rate of a bare loop (both in
    ``unit``), in ABBA order, each repeat printed: both lists, the ratio of the medians
    and the median of the per-repeat ratios."""
    got = abba(
        {"run": run, "loop": loop},
        repeats,
        lambda r, got: print(
            f"repeat {r + 1}: run {got['run'][-1]:.{digits}f}, "
            f"loop {got['loop'][-1]:.{digits}f} {unit}",
            flush=True,
        ),
    )
    runs, loops = got["run"], got["loop"]
    return {
        "run": runs,
        "loop": loops,
        "ratio_of_medians": statistics.median(runs) / statistics.median(loops),
        "median_of_paired_ratios": statistics.median(
            r / lo for r, lo in zip(runs, loops, strict=True)
        ),
    }


def run_vs_loop_text(
    result: Mapping[str, Any], session: Mapping[str, Any], unit: str, digits: int, target: float
) -> str:
    """The markdown of :func:`run_vs_loop`'s ``result``: a row per repeat, both ratios
    against ``target``, and the load of the ``session`` (:meth:`Session.fields`)."""
    rows = "".join(
        f"| {i + 1} | {r:.{digits}f} | {lo:.{digits}f} | {r / lo:.3f} |\n"
        for i, (r, lo) in enumerate(zip(result["run"], result["loop"], strict=True))
    )
    return f"""| repeat | benchbox run {unit} | bare loop {unit} | run / loop |
|---|---|---|---|
{rows}
Ratio of the medians (run / loop): **{result["ratio_of_medians"]:.3f}**; median of the \
per-repeat ratios: **{result["median_of_paired_ratios"]:.3f}** (target at least {target}).

Load average (1, 5, 15 min) before: {session["load_before"]}, after: \
{session["load_after"]}; other processes used {session["other_processes_cores"]} of the \
{session["cores"]} cores on average during the run (this benchmark's own CPU time excluded).
"""
