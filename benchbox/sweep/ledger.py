"""The ledger of a sweep: one line per run, in ``<sweep folder>/ledger.csv``.

Each line holds the run's position in the grid, its config hash (what identifies the
experiment, paths and hardware left out), its axis values, its status, the run id of the
run folder it made, the error of a failed run and the wall time. Only the sweep's driver
writes the ledger, and every change rewrites it atomically, so an interrupted sweep
leaves a readable ledger and the next ``benchbox sweep`` of the same grid resumes from it.

Statuses: ``queued`` (not started), ``running``, ``completed``, ``failed`` and
``interrupted`` (stopped by Ctrl-C or a signal; run again on resume).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError

__all__ = ["LEDGER_FILE", "STATUSES", "Entry", "Ledger", "plan", "read_ledger"]

STATUSES = ("queued", "running", "completed", "failed", "interrupted")
LEDGER_FILE = "ledger.csv"


@dataclass
class Entry:
    """One run of the sweep."""

    index: int
    config_hash: str
    axes: dict[str, Any] = field(default_factory=dict)
    status: str = "queued"
    run_id: str = ""
    error: str = ""
    wall_s: float | None = None
    started: str = ""
    finished: str = ""

    def label(self) -> str:
        """``fusion=dual seg=attunet seed=1``: the axis values, for tables and logs."""
        return " ".join(f"{k}={v}" for k, v in self.axes.items())


_COLUMNS = [f.name for f in fields(Entry)]
_START_AGAIN = (
    "remove it to start the ledger again (runs already on the leaderboard are not run again)"
)


class Ledger:
    """The entries of a sweep, kept in order and saved after every change."""

    def __init__(self, path: Path, entries: Iterable[Entry]) -> None:
        self.path = path
        self.entries = list(entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        """How many runs are in each status."""
        counts = dict.fromkeys(STATUSES, 0)
        for entry in self.entries:
            counts[entry.status] += 1
        return counts

    def update(self, entry: Entry, **changes: Any) -> None:
        """Change one entry and save the ledger."""
        status = changes.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        for key, value in changes.items():
            setattr(entry, key, value)
        self.save()

    def save(self) -> None:
        from benchbox.records.atomic import write_text

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for entry in self.entries:
            row = asdict(entry)
            row["axes"] = json.dumps(entry.axes, sort_keys=False)
            row["wall_s"] = "" if entry.wall_s is None else f"{entry.wall_s:.1f}"
            writer.writerow(row)
        write_text(self.path, buffer.getvalue())


def read_ledger(path: Path) -> list[Entry]:
    """The entries of an existing ledger.

    Raises:
        ConfigError: it cannot be read, or is damaged: empty, its header cut or not a
            ledger's, a line malformed. A damaged ledger is never taken for a new sweep,
            which would run every run again.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"sweep ledger {path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"sweep ledger {path} is damaged ({exc}); {_START_AGAIN}") from None
    if not header:
        raise ConfigError(f"sweep ledger {path} is empty; {_START_AGAIN}")
    if list(header) != _COLUMNS:
        raise ConfigError(
            f"sweep ledger {path} is damaged (its header is cut or not a ledger's: "
            f"{','.join(header)[:80]}); {_START_AGAIN}"
        )
    entries = []
    for number, row in enumerate(rows, start=2):
        try:
            entries.append(
                Entry(
                    index=int(row["index"]),
                    config_hash=row["config_hash"],
                    axes=json.loads(row["axes"] or "{}"),
                    status=row["status"],
                    run_id=row["run_id"] or "",
                    error=row["error"] or "",
                    wall_s=float(row["wall_s"]) if row["wall_s"] else None,
                    started=row["started"] or "",
                    finished=row["finished"] or "",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"sweep ledger {path}, line {number}: malformed ({exc})") from None
        if entries[-1].status not in STATUSES:
            raise ConfigError(
                f"sweep ledger {path}, line {number}: unknown status {entries[-1].status!r}"
            )
    return entries


def plan(
    path: Path,
    runs: Iterable[tuple[str, Mapping[str, Any]]],
    retry_failed: bool = False,
    rerun: bool = False,
) -> tuple[Ledger, list[Entry]]:
    """The ledger of a sweep and the entries to run now.

    ``runs`` are the sweep's (config hash, axis values) in grid order. A run whose hash
    completed in an earlier sweep in this folder is skipped (unless ``rerun``); a failed
    one is run again only with ``retry_failed`` or ``rerun``; queued, running (left by a
    killed driver) and interrupted runs are run again.

    Raises:
        ConfigError: the existing ledger is damaged (:func:`read_ledger`).
    """
    previous = {e.config_hash: e for e in read_ledger(path)} if path.exists() else {}
    entries, todo = [], []
    for index, (config_hash, axes) in enumerate(runs):
        old = previous.get(config_hash)
        if (
            old is not None
            and not rerun
            and (old.status == "completed" or (old.status == "failed" and not retry_failed))
        ):
            entry = Entry(**{**asdict(old), "index": index, "axes": dict(axes)})
        else:
            entry = Entry(index=index, config_hash=config_hash, axes=dict(axes))
            todo.append(entry)
        entries.append(entry)
    ledger = Ledger(path, entries)
    ledger.save()
    return ledger, todo
