"""benchbox.engine.timing: the timing primitives (checked with fake clocks and counters)."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.engine.timing import compare_speed, percentile, time_steps


def test_percentile_matches_numpy():
    values = [5.0, 1.0, 4.0, 2.5, 9.0, 7.5]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_time_steps_times_each_step_after_the_device_sync():
    now = [0.0]
    events: list[str] = []

    def step() -> None:
        events.append("step")
        now[0] += 1.0

    def sync() -> None:
        events.append("sync")
        now[0] += 0.5  # the device finishing queued work counts in the step

    warmup, seconds = time_steps(step, 2, 3, sync, clock=lambda: now[0])
    assert warmup == 2.5  # two steps, one sync at the end of the warm-up
    assert seconds == [1.5, 1.5, 1.5]
    assert events == ["step", "step", "sync"] + ["step", "sync"] * 3


def test_compare_speed_interleaves_in_rotated_order():
    calls: list[str] = []
    runners = {name: (lambda inputs, n=name: calls.append(n)) for name in ("a", "b", "c")}
    batch = [np.zeros((4, 1, 8, 8))]
    result = compare_speed(runners, batch, rounds=3, min_seconds=0.0)
    assert calls[:3] == ["a", "b", "c"]  # one untimed warm-up each
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {n: len(v) for n, v in result["rounds"].items()} == {"a": 3, "b": 3, "c": 3}
    assert result["batch"] == 4 and result["shape"] == [4, 1, 8, 8]
    assert all(v > 0 for v in result["images_per_s"].values())
