"""Inference speed, measured side by side on a shared, noisy machine.

Speed ratios are only meaningful when the things compared run under the same load:
:func:`compare_speed` interleaves them and reports medians over rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Runner = Callable[[Sequence[np.ndarray]], Any]


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
