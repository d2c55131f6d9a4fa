"""``benchbox bench``: training and inference speed of fusion + segmenter pairs, measured
the way timm's ``benchmark.py`` measures models (:mod:`.measure`), one pair in this
process or a grid of pairs each in a process of its own (:mod:`.grid`)."""

from __future__ import annotations

from benchbox.bench.measure import BenchSpec, bench

__all__ = ["BenchSpec", "bench"]
