"""One job in a worker process of its own: started, watched, stopped, and its end told.

Two ways to start the process (``start``):

* ``forkserver`` (the default where the platform can fork): the process is forked from
  a server process that imported torch, benchbox and the built-in plugins once
  (:mod:`benchbox.sweep.forkserver`: one per sweep for the local executor, one per Ray
  worker process for Ray). A run starts in a fraction of a second instead of paying
  seconds of imports, and still has its own process: its crash, NaN or out-of-memory
  kill ends it alone.
* ``process``: a fresh ``python -m benchbox.sweep.worker``, which imports everything
  itself (for platforms without fork, or a plugin that cannot be forked).

Either way the worker runs in a session of its own (a Ctrl-C at the terminal reaches the
driver, which stops the workers itself), ends when the process that started it ends
(:mod:`benchbox.sweep.lifeline`), and writes its output to the job's log. A worker that
dies without saying how its run ended (killed, a segfault, out of memory) is a failed
run: its run folder, which says ``running``, is marked ``failed`` with the signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from benchbox.errors import ConfigError
from benchbox.sweep import lifeline
from benchbox.sweep.forkserver import ForkServer, shared
from benchbox.sweep.job import OWNER_ENV, RESULT_PREFIX, Job, Outcome, thread_vars

__all__ = [
    "OWNER_ENV",
    "RESULT_PREFIX",
    "STARTS",
    "default_start",
    "describe_exit",
    "mark_ended",
    "resolve_start",
    "run_worker",
    "thread_env",
    "worker_command",
]

#: The ways a worker process can start (see the module docstring).
STARTS = ("forkserver", "process")


def default_start() -> str:
    """``forkserver`` where the platform can fork, else ``process``."""
    return "forkserver" if hasattr(os, "fork") and sys.platform != "win32" else "process"


def resolve_start(start: str, who: str) -> str:
    """The way of starting workers ``start`` names (``""``: :func:`default_start`).

    Raises:
        ConfigError: it is not one this platform has.
    """
    start = start or default_start()
    if start not in STARTS:
        raise ConfigError(f"{who}: start must be one of {', '.join(STARTS)}, got {start!r}")
    if start == "forkserver" and default_start() != "forkserver":
        raise ConfigError(f"{who}: start=forkserver is not available here; use start=process")
    return start


def worker_command() -> list[str]:
    """The command of a ``process`` worker."""
    return [sys.executable, "-m", "benchbox.sweep.worker"]


def thread_env(threads: int) -> dict[str, str]:
    """This process's environment with :func:`thread_vars`."""
    return {**os.environ, **thread_vars(threads)}


class _Worker(Protocol):
    pid: int

    def wait(self, timeout: float) -> int | None:
        """The exit code once ended (negative: the signal), else None after ``timeout``."""

    def outcome(self) -> Outcome | None: ...

    def tail(self) -> str:
        """The last line the worker wrote (its log's or its output's), for errors."""

    def lost(self) -> str:
        """Why the worker's end is not known (its forkserver died), or ''."""


def run_worker(
    job: Job,
    stop: threading.Event,
    poll: float = 0.2,
    grace: float = 30.0,
    start: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    server: ForkServer | None = None,
) -> Outcome:
    """Run one job in a worker process of its own and wait for it to end.

    When ``stop`` is set, or this thread is interrupted (a ``KeyboardInterrupt``, as
    ``ray.cancel`` raises in a task), the worker gets SIGINT (as Ctrl-C would send it)
    and ``grace`` seconds to mark its run interrupted, then SIGKILL: a worker never
    outlives its call.

    Args:
        job: the job; its ``threads`` limit the worker's CPU threads.
        stop: set to stop the worker.
        poll: seconds between looks at ``stop``.
        grace: seconds a stopped worker has to end before it is killed.
        start: ``forkserver`` or ``process`` (default: :func:`default_start`).
        env: the worker's environment (default: the forkserver's, or this process's,
            with the thread limits).
        cwd: its working folder (default: the forkserver's, or this process's).
        server: the forkserver to fork from (default: this process's shared one,
            :func:`benchbox.sweep.forkserver.shared`).
    """
    t0 = time.perf_counter()
    worker: _Worker
    if (start or default_start()) == "forkserver":
        try:
            worker = _Forked(job, env, cwd, server or shared())
        except OSError as exc:
            error = f"worker process could not start ({exc})"
            return Outcome("failed", job.run_id, error, time.perf_counter() - t0)
    else:
        worker = _Subprocess(job, env, cwd)
    interrupted = False
    code: int | None = None
    try:
        while code is None:
            if stop.is_set() and not interrupted:
                interrupted = True
                code = _stop(worker, grace)
            else:
                code = worker.wait(poll)
    except KeyboardInterrupt:
        interrupted = True
        code = _stop(worker, grace)
    finally:
        if code is None:  # an unexpected error here: the worker must not outlive us
            _signal(worker.pid, signal.SIGKILL)
        elif worker.lost():  # its forkserver died: it may still be cleaning up
            _end_orphan(worker.pid, grace)
        else:  # what is left of its group (DataLoader workers of a killed run)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, signal.SIGKILL)
    wall = time.perf_counter() - t0
    outcome = worker.outcome()
    if outcome is None:
        how = worker.lost() or describe_exit(code)
        status = "interrupted" if interrupted else "failed"
        # SIGKILL (the out-of-memory killer, or a user) leaves nothing worth quoting: the
        # log's last line is then just the run's progress.
        tail = "" if code == -signal.SIGKILL else worker.tail()
        error = f"worker process ended without a result ({how})" + (f": {tail}" if tail else "")
        outcome = Outcome(status=status, run_id=job.run_id, error=error, wall_s=wall)
        mark_ended(job, status, f"the worker process ended without a result ({how})")
    elif interrupted and outcome.status != "completed":
        outcome.status = "interrupted"
    if not outcome.wall_s:
        outcome.wall_s = wall
    if not outcome.run_id:
        outcome.run_id = job.run_id
    return outcome


def describe_exit(code: int) -> str:
    """``killed by signal 9 (SIGKILL)`` or ``exit code 1``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code} ({name})"
    return f"exit code {code}"


def mark_ended(job: Job, status: str, error: str) -> None:
    """Mark the job's run folder ``status`` with ``error`` if it still says ``running``
    (:func:`benchbox.records.status.mark_dead`): its process died without writing its end."""
    from benchbox.records.status import STATUS_FILE, mark_dead

    out = job.config.get("out")
    if job.run_id and out:
        mark_dead(Path(out) / "runs" / job.run_id / STATUS_FILE, status, error)


def _stop(worker: _Worker, grace: float) -> int:
    """SIGINT to the worker's group, ``grace`` seconds to end, then SIGKILL."""
    _signal(worker.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while True:
        try:
            code = worker.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:  # a second interrupt: no more waiting
            code = None
            deadline = 0.0
        if code is not None:
            return code
        if time.monotonic() >= deadline:
            _signal(worker.pid, signal.SIGKILL)
            while code is None:
                code = worker.wait(1.0)
            return code


def _end_orphan(pid: int, grace: float) -> None:
    """End a worker that is no longer this process's to wait for: SIGTERM (a run
    marks itself interrupted), ``grace`` seconds, then SIGKILL."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    """``sig`` to a running worker's process group (the worker and its DataLoader
    workers); to the worker alone if it has not made its group yet. Only for a worker
    not yet waited for, whose pid cannot have been reused."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# -- forkserver ------------------------------------------------------------------------
class _Forked:
    """A worker forked by a forkserver (:mod:`benchbox.sweep.forkserver`)."""

    def __init__(
        self, job: Job, env: Mapping[str, str] | None, cwd: str | None, server: ForkServer
    ) -> None:
        self.log_path = job.log_path
        self.child = server.fork(job, lifeline.owner(), env, cwd)
        self.pid: int = self.child.pid

    def wait(self, timeout: float) -> int | None:
        code = self.child.wait(timeout)
        if code is None and self.child.ended.is_set():  # the server died under it
            return -int(signal.SIGKILL)
        return code

    def outcome(self) -> Outcome | None:
        return self.child.outcome

    def tail(self) -> str:
        return _log_tail(self.log_path)

    def lost(self) -> str:
        return self.child.lost


def _log_tail(path: str) -> str:
    """The last non-empty line of a log, for the error of a worker that died."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else ""


# -- a fresh process -------------------------------------------------------------------
class _Subprocess:
    """A fresh ``python -m benchbox.sweep.worker``; its outcome is a line of its output."""

    def __init__(self, job: Job, env: Mapping[str, str] | None, cwd: str | None) -> None:
        owner_pid, identity = lifeline.owner()
        environment = {**(os.environ if env is None else env), **thread_vars(job.threads)}
        environment[OWNER_ENV] = f"{owner_pid}:{identity or ''}"
        self.proc = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.reader = _OutputReader(self.proc)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(job.to_json())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join()
        return code

    def outcome(self) -> Outcome | None:
        return self.reader.outcome

    def tail(self) -> str:
        return self.reader.tail()

    def lost(self) -> str:
        return ""


class _OutputReader(threading.Thread):
    """Drains the worker's output (so it never blocks on a full pipe), keeps its last
    lines for error messages and picks out the outcome line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.outcome: Outcome | None = None
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                try:
                    self.outcome = Outcome.from_dict(json.loads(line[len(RESULT_PREFIX) :]))
                except (ValueError, TypeError):
                    self.lines.append(line.rstrip())
                continue
            self.lines.append(line.rstrip())
            del self.lines[:-20]

    def tail(self) -> str:
        lines = [ln for ln in self.lines if ln.strip()]
        return lines[-1][:300] if lines else ""
