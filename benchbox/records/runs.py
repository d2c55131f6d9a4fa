"""The runs of an output folder and their state, including dead runs that still say
``running``.

A run whose process was killed outright (``SIGKILL``, a power cut, the out-of-memory
killer) cannot write its end, so its ``status.json`` stays ``running``.
:func:`run_state` tells such a run from a live one, and :func:`list_runs` does it for a
whole folder (``benchbox runs`` renders it; a sweep ledger can use it to find runs to
redo). A ``running`` run is **stale** when

- it ran on this host and its process is gone: the pid no longer exists, or it now
  belongs to another process (the recorded process identity differs), or
- its last heartbeat is older than ``stale_after`` seconds (default
  :data:`STALE_AFTER_S`, ten missed heartbeats), which is the only test possible for a
  run on another host sharing the folder. Status files without a heartbeat (written by
  older versions) are judged by their modification time.

Example::

    from benchbox.records.runs import list_runs

    for run in list_runs("."):
        if run.state == "stale":
            print(run.run_id, run.reason)
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError
from benchbox.records.status import HEARTBEAT_S, STATUS_FILE, process_identity, read_status

__all__ = ["STALE_AFTER_S", "STATES", "RunState", "list_runs", "run_state", "runs_folder"]

#: Seconds without a heartbeat after which a ``running`` run counts as stale.
STALE_AFTER_S = 10 * HEARTBEAT_S

#: The states :func:`run_state` reports: the four a status file records, ``stale`` for a
#: dead run that still says ``running``, ``unknown`` for a missing or unreadable file.
STATES = ("running", "completed", "failed", "interrupted", "stale", "unknown")


@dataclass(frozen=True)
class RunState:
    """One run's state, judged from its ``status.json`` and, for a run of this host,
    its process.

    Attributes:
        run_id: the run folder's name.
        path: the run folder.
        state: one of :data:`STATES`.
        recorded: the status the file records (``None`` if missing or unreadable).
        reason: why a run failed, was interrupted, is stale or unknown; else ``None``.
        started: when the run started (local time, ISO 8601), if recorded.
        elapsed_s: seconds from the start to the file's last write, if recorded.
        heartbeat_age_s: seconds since the last heartbeat (or write) of the file.
        pid: the process that ran it, if recorded.
        host: the host it ran on, if recorded.
        status: the status file's content (empty if missing or unreadable).
    """

    run_id: str
    path: Path
    state: str
    recorded: str | None = None
    reason: str | None = None
    started: str | None = None
    elapsed_s: float | None = None
    heartbeat_age_s: float | None = None
    pid: int | None = None
    host: str | None = None
    status: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the path as a string, the status file left out)."""
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "state": self.state,
            "recorded": self.recorded,
            "reason": self.reason,
            "started": self.started,
            "elapsed_s": self.elapsed_s,
            "heartbeat_age_s": self.heartbeat_age_s,
            "pid": self.pid,
            "host": self.host,
        }


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _heartbeat_age(status: dict[str, Any], file: Path, now: float) -> float | None:
    stamp = status.get("heartbeat")
    if isinstance(stamp, str):
        try:
            return now - datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    try:
        return now - file.stat().st_mtime
    except OSError:
        return None


def _gone(pid: int, identity: Any) -> str | None:
    """Why process ``pid`` of this host is not the run's any more, or None if it is."""
    if not _pid_exists(pid):
        return f"process {pid} is gone"
    now_identity = process_identity(pid)
    if identity and now_identity and identity != now_identity:
        return f"process {pid} is gone (the pid now belongs to another process)"
    return None


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_state(
    run_dir: str | Path, *, stale_after: float = STALE_AFTER_S, now: float | None = None
) -> RunState:
    """The state of the run in ``run_dir``; never raises for a missing or bad status file.

    Args:
        run_dir: a run folder (``runs/<run_id>``).
        stale_after: seconds without a heartbeat after which a ``running`` run is stale.
        now: the current time (``time.time()``), for reproducible answers in tests.
    """
    path = Path(run_dir)
    now = time.time() if now is None else now
    file = path / STATUS_FILE
    if not file.exists():
        return RunState(path.name, path, "unknown", reason=f"no {STATUS_FILE}")
    try:
        status = read_status(file)
    except (OSError, ValueError) as exc:
        return RunState(path.name, path, "unknown", reason=f"unreadable {STATUS_FILE} ({exc})")
    recorded = status.get("status")
    pid = status.get("pid") if isinstance(status.get("pid"), int) else None
    host = status.get("host") if isinstance(status.get("host"), str) else None
    elapsed = status.get("elapsed_s")
    age = _heartbeat_age(status, file, now)
    common: dict[str, Any] = {
        "recorded": recorded,
        "started": status.get("started"),
        "elapsed_s": float(elapsed) if isinstance(elapsed, (int, float)) else None,
        "heartbeat_age_s": age,
        "pid": pid,
        "host": host,
        "status": status,
    }
    run_id = str(status.get("run_id") or path.name)
    if recorded in ("completed", "failed", "interrupted"):
        return RunState(run_id, path, recorded, reason=status.get("error"), **common)
    if recorded != "running":
        return RunState(run_id, path, "unknown", reason=f"status {recorded!r}", **common)
    if pid is not None and host == socket.gethostname():
        gone = _gone(pid, status.get("process_start"))
        if gone:
            return RunState(run_id, path, "stale", reason=gone, **common)
    if age is not None and age > stale_after:
        where = f" from {host}" if host and host != socket.gethostname() else ""
        reason = f"no heartbeat{where} for {_age(age)}"
        if pid is not None and host == socket.gethostname():
            reason += f" although process {pid} exists (hung?)"
        return RunState(run_id, path, "stale", reason=reason, **common)
    return RunState(run_id, path, "running", **common)


def runs_folder(folder: str | Path) -> Path:
    """The folder holding the run folders: ``folder/runs`` (an output folder, as given to
    ``benchbox run --out``), or ``folder`` itself if it holds runs.

    Raises:
        ConfigError: ``folder`` does not exist or holds no runs folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    if (folder / "runs").is_dir():
        return folder / "runs"
    if any((child / STATUS_FILE).exists() for child in folder.iterdir() if child.is_dir()):
        return folder
    raise ConfigError(f"{folder}: no runs here (expected {folder / 'runs'}/<run_id>/)")


def list_runs(
    folder: str | Path,
    *,
    stale_after: float = STALE_AFTER_S,
    states: Iterable[str] | None = None,
    now: float | None = None,
) -> list[RunState]:
    """Every run under ``folder`` (see :func:`runs_folder`), oldest first.

    Args:
        folder: an output folder or its ``runs/`` folder.
        stale_after: seconds without a heartbeat after which a ``running`` run is stale.
        states: keep only runs in these states (see :data:`STATES`).
        now: the current time (``time.time()``), for reproducible answers in tests.

    Raises:
        ConfigError: no such folder, or an unknown state in ``states``.
    """
    wanted = set(states) if states is not None else None
    if wanted is not None and wanted - set(STATES):
        bad = ", ".join(sorted(wanted - set(STATES)))
        raise ConfigError(f"unknown run state {bad} (states: {', '.join(STATES)})")
    if not stale_after > 0:
        raise ConfigError(f"stale_after must be > 0 seconds, got {stale_after}")
    root = runs_folder(folder)
    now = time.time() if now is None else now
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        state = run_state(child, stale_after=stale_after, now=now)
        if wanted is None or state.state in wanted:
            found.append(state)
    found.sort(key=lambda r: (r.started or "", r.run_id))
    return found
