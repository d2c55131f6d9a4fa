"""Sweeps: many ``benchbox run`` over a grid of settings and seeds, each in its own
process, on this machine or a Ray cluster, resumable from a ledger."""

__all__ = []
