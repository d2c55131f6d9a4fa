"""One run of a sweep in a process of its own: ``python -m benchbox.sweep.worker``.

Reads a :class:`~benchbox.sweep.executor.Job` as JSON on standard input, runs it exactly
as ``benchbox run`` would (same checks, records and leaderboard row), writes the run's
log to the job's log file and prints one line ``benchbox-sweep-result: {json}`` with its
:class:`~benchbox.sweep.executor.Outcome`. SIGTERM is treated like Ctrl-C: the run
folder is marked ``interrupted``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TextIO

from benchbox.sweep.executor import RESULT_PREFIX, Job, Outcome


def run_job(job: Job, log_file: TextIO | None) -> Outcome:
    """Run one job in this process and say how it ended."""
    import torch

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
    t0 = time.perf_counter()
    run_id = ""
    try:
        config = cfg.apply(cfg.RunConfig(), job.config, "sweep")
        config.validate()
        prepared = prepare(config, log=log)
        # Named here, so the ledger can point to the folder of a run that fails.
        run_id = rundir.new_run_id(config.fusion, config.seg, config.seed)
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


def main() -> int:
    from benchbox.engine.interrupts import sigterm_as_interrupt

    # A process started in the background inherits SIGINT ignored; the driver stops a
    # worker with SIGINT, so take the default Ctrl-C behaviour back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    job = Job(**json.loads(sys.stdin.read()))
    log_file = None
    if job.log_path:
        Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(job.log_path, "a", encoding="utf-8")  # noqa: SIM115
    try:
        with sigterm_as_interrupt():
            outcome = run_job(job, log_file)
    except KeyboardInterrupt:
        outcome = Outcome("interrupted", error="interrupted")
    finally:
        if log_file is not None:
            log_file.close()
    print(RESULT_PREFIX + json.dumps(outcome.__dict__), flush=True)
    return {"completed": 0, "interrupted": 130}.get(outcome.status, 1)


if __name__ == "__main__":
    sys.exit(main())
