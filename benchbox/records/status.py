"""A run's ``status.json``: how the run ended, or which process is still running it.

The file is written when the run starts (``running``), rewritten by a heartbeat every
:data:`HEARTBEAT_S` seconds while it runs, and rewritten once more when it ends
(``completed``, ``failed`` with the reason, or ``interrupted``). Every write is atomic.

Fields (all JSON):

- ``run_id``, ``status``, ``error`` (null unless failed or interrupted);
- ``started`` (local time, ISO 8601) and ``elapsed_s`` at the last write;
- ``pid``, ``host`` (``socket.gethostname()``) and ``process_start`` (an identity of the
  process that survives pid reuse: boot id and start time on Linux, null elsewhere);
- ``heartbeat``: UTC time (ISO 8601, ``+00:00``) of the last write.

A process killed outright (``SIGKILL``, power cut, out-of-memory killer) cannot write
its end, so its file stays ``running``; :func:`benchbox.records.runs.run_state` tells such a
dead run from a live one by its pid, process identity and heartbeat age.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchbox.errors import WriteError
from benchbox.records import atomic

__all__ = [
    "FINAL",
    "HEARTBEAT_S",
    "STATUS_FILE",
    "StatusFile",
    "process_identity",
    "read_status",
    "utc_now",
]

STATUS_FILE = "status.json"

#: Seconds between heartbeat writes of a running run's status file.
HEARTBEAT_S = 30.0

#: The statuses a run ends with; ``running`` is the only other one written.
FINAL = ("completed", "failed", "interrupted")


def utc_now() -> str:
    """The current UTC time as ISO 8601 with an explicit offset (``+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def process_identity(pid: int) -> str | None:
    """An identity of process ``pid`` that a later process with the same pid lacks.

    On Linux: the boot id and the process's start time in clock ticks since boot, read
    from ``/proc``. None where ``/proc`` is not available or the process does not exist.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{boot}:{fields[19]}"  # field 22 of proc(5): starttime


class StatusFile:
    """Writes one run's status file and keeps its heartbeat while the run is running.

    The heartbeat is a daemon thread, so it beats during training, evaluation and data
    loading alike; it stops at the first final status. A heartbeat that cannot be
    written (e.g. a full disk) is skipped; the next one tries again.
    """

    def __init__(self, path: Path, run_id: str, heartbeat_s: float | None = None) -> None:
        import os

        self.path = path
        self.run_id = run_id
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.started = time.time()
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.identity = process_identity(self.pid)
        self._fields: dict[str, Any] = {"status": "running", "error": None}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        return str(self._fields["status"])

    def _document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **self._fields,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "elapsed_s": round(time.time() - self.started, 2),
            "pid": self.pid,
            "host": self.host,
            "process_start": self.identity,
            "heartbeat": utc_now(),
        }

    def _write(self) -> None:
        text = json.dumps(self._document(), indent=2, default=str) + "\n"
        atomic.write_text(self.path, text)

    def set(self, status: str, error: str | None = None, **extra: Any) -> None:
        """Write ``status`` (and the reason, and any extra fields); a final one stops the
        heartbeat.

        Raises:
            WriteError: the file could not be written; the previous one is intact.
        """
        with self._lock:
            self._fields = {"status": status, "error": error, **extra}
            if status in FINAL:
                self._stop.set()
            self._write()
        if status == "running":
            self._start_heartbeat()
        elif self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def beat(self) -> bool:
        """Rewrite the file with a fresh heartbeat if the run is still running.

        Returns:
            Whether a heartbeat was written.
        """
        with self._lock:
            if self._stop.is_set() or self.status != "running":
                return False
            try:
                self._write()
            except WriteError:
                return False
            return True

    def _start_heartbeat(self) -> None:
        if self._thread is not None or self.heartbeat_s <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(self.heartbeat_s):
                self.beat()

        self._thread = threading.Thread(
            target=loop, name=f"benchbox-heartbeat-{self.run_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat without writing (e.g. when the run could not be created)."""
        self._stop.set()


def read_status(path: Path) -> dict[str, Any]:
    """The content of a status file.

    Raises:
        OSError: it cannot be read.
        ValueError: it is not a JSON object (e.g. empty or truncated).
    """
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def mark_dead(path: Path, status: str, error: str) -> bool:
    """Record the end of a run whose process died without writing it (killed by a
    signal, out of memory), as whoever started that process saw it: ``status``
    (``failed``, ``interrupted``) with ``error``, only if the file still says
    ``running`` (a run that wrote its own end is left alone).

    Returns:
        Whether the file was rewritten. Best effort: a file that cannot be read or
        written is left as it is (``benchbox runs`` then reports the run stale).
    """
    try:
        data = read_status(path)
    except (OSError, ValueError):
        return False
    if data.get("status") != "running":
        return False
    data.update(status=status, error=error, heartbeat=utc_now())
    try:
        atomic.write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    except (WriteError, OSError):
        return False
    return True
