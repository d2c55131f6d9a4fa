"""What runs leave on disk: atomic writes (:mod:`.atomic`), the run folder
(:mod:`.rundir`) and its status (:mod:`.status`), the runs of a folder (:mod:`.runs`),
leaderboard CSVs (:mod:`.leaderboard`) and local weight files (:mod:`.weights`)."""

__all__ = []
