"""Metrics: pure functions on NumPy arrays or tensors, each defined in one place."""
