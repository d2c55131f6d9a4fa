"""Timing primitives: the one home of how benchbox times things.

* :func:`time_steps`: untimed warm-up steps, then each timed step read after the device
  has finished it (``benchbox bench``, as timm's ``benchmark.py`` does).
* :func:`compare_speed`: several ways of running one batch, interleaved in rotated
  order over rounds, medians reported: speed ratios are only meaningful when the
  things compared run under the same load (``benchbox export``'s checks).
* :func:`percentile`: step-time percentiles.

Training and test throughput of a run are measured where that work happens
(:mod:`benchbox.engine.train`, :mod:`benchbox.engine.inference`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Clock", "Runner", "compare_speed", "percentile", "time_steps"]

Runner = Callable[[Sequence[np.ndarray]], Any]
Clock = Callable[[], float]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (NumPy's default method)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def time_steps(
    step: Callable[[], None],
    warmup: int,
    steps: int,
    sync: Callable[[], None] = lambda: None,
    clock: Clock = time.perf_counter,
) -> tuple[float, list[float]]:
    """Run ``warmup`` untimed steps, then time ``steps`` steps one by one.

    ``sync`` waits for the device (``torch.cuda.synchronize``) before a clock is read,
    so a step's time includes its queued device work.

    Returns:
        ``(seconds of the whole warm-up, [seconds of each timed step])``.
    """
    t0 = clock()
    for _ in range(warmup):
        step()
    sync()
    warmup_seconds = clock() - t0
    seconds = []
    for _ in range(steps):
        start = clock()
        step()
        sync()
        seconds.append(clock() - start)
    return warmup_seconds, seconds


def compare_speed(
    runners: Mapping[str, Runner],
    inputs: Sequence[np.ndarray],
    rounds: int = 5,
    min_seconds: float = 0.5,
) -> dict[str, Any]:
    """Images per second of each runner on the same batch, interleaved.

    Each round times every runner once, in an order rotated from round to round, for
    at least ``min_seconds`` (repeating the batch); the medians over rounds are
    reported, so a burst of load from other processes hits all runners alike.

    Returns:
        ``{"images_per_s": {name: median}, "rounds": {name: [per round]}, ...}``.
    """
    names = list(runners)
    batch = int(inputs[0].shape[0])
    for name in names:  # untimed warm-up: allocation and per-shape setup
        runners[name](inputs)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            reps, t0 = 0, time.perf_counter()
            while True:
                runners[name](inputs)
                reps += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_seconds:
                    break
            samples[name].append(reps * batch / elapsed)
    return {
        "images_per_s": {n: float(np.median(v)) for n, v in samples.items()},
        "rounds": samples,
        "batch": batch,
        "shape": list(inputs[0].shape),
        "n_rounds": rounds,
    }
