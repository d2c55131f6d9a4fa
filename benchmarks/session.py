"""What the side-by-side benchmarks share: the ABBA order of their measurements, and
what they record about the session (the machine, torch, and the load it was under).

Speed targets are ratios measured in one session on a noisy machine, so each
benchmark alternates its two sides (A B, B A, ...: a steady drift of the load cancels
over two repeats) and records the load average and the CPU time other processes used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from metrics_speed import cpu_name, cpu_seconds

__all__ = ["Session", "abba"]


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
