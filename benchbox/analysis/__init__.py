"""Comparing methods: leaderboard rows grouped into methods (:mod:`.methods`), paired
statistics (:mod:`.stats`) and the comparison of ``benchbox compare`` (:mod:`.compare`)."""

__all__ = []
