"""Datasets: the contract, the synthetic phantom, SimpleITK readers and preprocessing."""

from __future__ import annotations

from benchbox.data.base import SPLITS, BenchDataset, Sample, Volume

__all__ = ["SPLITS", "BenchDataset", "Sample", "Volume"]
