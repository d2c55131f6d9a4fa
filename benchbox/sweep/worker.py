"""One run of a sweep in a process of its own.

The process is forked from a forkserver (:func:`child_main`) or started fresh as
``python -m benchbox.sweep.worker`` (:func:`main`, which reads a
:class:`~benchbox.sweep.job.Job` as JSON on standard input and prints one line
``benchbox-sweep-result: {json}`` with its :class:`~benchbox.sweep.job.Outcome`); see
:mod:`benchbox.sweep.process`. Either way it runs the job exactly as ``benchbox run``
would (same checks, records and leaderboard row), writes the run's log to the job's log
file, ends when the process that started it ends (:mod:`benchbox.sweep.lifeline`), and
treats SIGTERM like Ctrl-C: the run folder is marked ``interrupted``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from benchbox.sweep import lifeline
from benchbox.sweep.job import OWNER_ENV, RESULT_PREFIX, Job, Outcome, thread_vars

__all__ = ["child_main", "main", "run_job", "run_logged"]


def run_job(job: Job, log_file: TextIO | None) -> Outcome:
    """Run one job in this process and say how it ended."""
    import torch
    from threadpoolctl import threadpool_limits

    from benchbox import config as cfg
    from benchbox.engine.prepare import prepare
    from benchbox.engine.runner import execute
    from benchbox.errors import BenchboxError
    from benchbox.records import rundir

    def log(message: str) -> None:
        if log_file is not None:
            log_file.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            log_file.flush()

    torch.set_num_threads(max(1, job.threads))
    # The BLAS and OpenMP pools too: a forkserver forked from the sweep's driver has them
    # at the sizes the driver loaded them with, before this job's limit was known.
    threadpool_limits(max(1, job.threads))
    t0 = time.perf_counter()
    run_id = job.run_id
    try:
        config = cfg.apply(cfg.RunConfig(), job.config, "sweep")
        config.validate()
        # Named before the work, so the ledger can point to the folder of a run that fails.
        run_id = run_id or rundir.new_run_id(config.fusion, config.seg, config.seed)
        folder = Path(config.out) / "runs" / run_id
        if folder.exists():
            raise BenchboxError(
                f"run folder {folder} already exists: this job was started before "
                "(a retried task?) and is not run twice"
            )
        prepared = prepare(config, log=log)
        result = execute(prepared, None, log, run_id=run_id)
    except KeyboardInterrupt:
        return Outcome("interrupted", run_id, "interrupted", time.perf_counter() - t0)
    except BenchboxError as exc:
        log(f"error: {exc}")
        return Outcome("failed", run_id, str(exc), time.perf_counter() - t0)
    except Exception as exc:  # a plugin's own bug: keep its traceback in the log
        if log_file is not None:
            traceback.print_exc(file=log_file)
        return Outcome("failed", run_id, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    summary = {k: float(v) for k, v in result.summary.items()}
    return Outcome("completed", result.run_id, "", time.perf_counter() - t0, summary)


def run_logged(job: Job) -> Outcome:
    """:func:`run_job` with the job's log file open and SIGTERM handled as Ctrl-C."""
    from benchbox.engine.interrupts import sigterm_as_interrupt

    # A process started in the background inherits SIGINT ignored; the driver stops a
    # worker with SIGINT, so take the default Ctrl-C behaviour back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log_file = None
    try:
        if job.log_path:
            Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
            log_file = open(job.log_path, "a", encoding="utf-8")  # noqa: SIM115
        with sigterm_as_interrupt():
            return run_job(job, log_file)
    except KeyboardInterrupt:
        return Outcome("interrupted", job.run_id, error="interrupted")
    except OSError as exc:
        return Outcome("failed", job.run_id, f"cannot write the log {job.log_path} ({exc})")
    finally:
        if log_file is not None:
            log_file.close()


def child_main(
    job_json: str,
    result_fd: int,
    owner: tuple[int, str | None],
    env: Mapping[str, str] | None,
    cwd: str | None,
) -> int:
    """A worker forked by the forkserver: run the job, write its outcome (JSON) to
    ``result_fd`` and return the exit code.

    The child takes the environment and working folder of the process that asked for it
    (the server has those of its own start), a session of its own, and its thread limits
    before torch runs anything; its output goes to the job's log, not to a terminal.
    """
    os.setsid()
    lifeline.die_with(*owner)
    job = Job.from_json(job_json)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.environ.update(thread_vars(job.threads))
    outcome: Outcome
    try:
        if cwd:
            os.chdir(cwd)
        _output_to(job.log_path)
    except OSError as exc:
        outcome = Outcome("failed", job.run_id, f"worker cannot start ({exc})")
    else:
        outcome = run_logged(job)
    with os.fdopen(result_fd, "w", encoding="utf-8") as result:
        result.write(json.dumps(outcome.__dict__))
    sys.stdout.flush()
    sys.stderr.flush()
    return _exit_code(outcome)


def _output_to(log_path: str) -> None:
    """Point this process's standard output and error (file descriptors 1 and 2, for
    libraries writing there directly) at the log, or nowhere."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _exit_code(outcome: Outcome) -> int:
    return {"completed": 0, "interrupted": 130}.get(outcome.status, 1)


def main() -> int:
    """A worker started fresh (``python -m benchbox.sweep.worker``)."""
    owner = os.environ.pop(OWNER_ENV, "")
    if owner:
        pid, _, identity = owner.partition(":")
        lifeline.die_with(int(pid), identity or None)
    job = Job.from_json(sys.stdin.read())
    outcome = run_logged(job)
    print(RESULT_PREFIX + json.dumps(outcome.__dict__), flush=True)
    return _exit_code(outcome)


if __name__ == "__main__":
    sys.exit(main())
