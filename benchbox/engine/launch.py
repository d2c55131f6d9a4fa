"""Starting one run in several processes, and what each of them does.

* :func:`run_in_group` is the body of every process of ``torchrun --nproc-per-node N
  -m benchbox run ...``: check and build the run, join the process group, then rank 0
  runs :func:`benchbox.engine.runner.execute` (training, validation, test, records) while the
  other ranks train alongside it (:mod:`benchbox.engine.distributed` describes the protocol).
* :func:`launch` is ``benchbox run --nproc N``: it starts N such processes on this
  machine through torch's elastic launcher (``torch.distributed.launcher``, the API
  behind ``torchrun --standalone``), waits for them and returns rank 0's result. A failed
  rank stops the others (the launcher's doing) and becomes one :class:`LaunchError` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from benchbox.engine import distributed, interrupts
from benchbox.errors import BenchboxError, ConfigError

if TYPE_CHECKING:
    from benchbox.config.run import RunConfig
    from benchbox.engine.prepare import Log
    from benchbox.engine.runner import RunResult
    from benchbox.engine.train import ProgressReporter
    from benchbox.hooks.registry import Registry

__all__ = ["LaunchError", "RankFailed", "launch", "run_in_group"]


class LaunchError(BenchboxError):
    """A process of a run started by :func:`launch` failed."""


class RankFailed(Exception):
    """Carries a rank's one-line error to the launcher (see :func:`launch`)."""


def run_in_group(
    config: RunConfig,
    progress: ProgressReporter | None = None,
    log: Log | None = None,
    registry: Registry | None = None,
    run_id: str | None = None,
) -> RunResult | None:
    """Run this process's part of a distributed run started by torchrun.

    Every rank checks and builds the run first (a bad option fails everywhere before the
    process group is joined), then joins it; rank 0 returns the run's result, the other
    ranks ``None``. The process group is left in every case.

    Raises:
        ConfigError: not started by torchrun, or a setting a distributed run cannot take.
    """
    from benchbox.engine.prepare import prepare
    from benchbox.engine.runner import execute
    from benchbox.engine.schedule import train_stages
    from benchbox.hooks.registry import blame_plugins

    world = distributed.env_world()
    if world is None:
        raise ConfigError("not started by torchrun (WORLD_SIZE is not set)")
    rank, size, local_rank, local_size = world
    device = distributed.resolve_device(config.device, local_rank, local_size)
    here = distributed.Distributed(rank, size, local_rank, "", device)
    p = prepare(config, registry, log if rank == 0 else None, dist=here)
    try:
        p.dist = distributed.start(device, world)
        if p.dist.is_main:
            return execute(p, progress, log, run_id)
        with interrupts.sigterm_as_interrupt(), blame_plugins(p.components(), "while training"):
            train_stages(p, None, None)
        return None
    finally:
        distributed.stop()


def _rank_main(
    config: dict[str, Any], run_id: str, threads: int, entry: Callable[..., Any] | None
) -> Any:
    """The function each process started by :func:`launch` runs."""
    import torch

    from benchbox import config as cfg

    if threads:
        torch.set_num_threads(threads)
    try:
        run_config = cfg.apply(cfg.RunConfig(), config, "launcher")
        if entry is not None:
            return entry(run_config, run_id)
        return run_in_group(run_config, run_id=run_id)
    except KeyboardInterrupt:
        _end(None, 130)
    except BenchboxError as exc:
        _end(RankFailed(str(exc)), 1)
    except Exception as exc:  # a bug: its type and message reach the launcher
        _end(exc, 1)


def _end(error: Exception | None, code: int) -> NoReturn:
    """End a failed process started by :func:`launch`: its error goes to the launcher's
    error file. After joining the process group the process ends with ``os._exit``: once
    a peer died, a normal interpreter exit can wait forever on the group's threads."""
    if not distributed.joined():
        if error is None:
            raise SystemExit(code)
        raise error
    if error is not None:
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler

        get_error_handler().record_exception(error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def _quiet_launcher() -> Iterator[None]:
    """Keep torch's launcher logs (tracebacks of failed ranks) off the console: the
    failure is reported as one line instead."""
    loggers = [logging.getLogger(n) for n in ("torch.distributed", "torch.multiprocessing")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def launch(
    config: RunConfig,
    nproc: int,
    entry: Callable[[RunConfig, str], Any] | None = None,
    run_id: str | None = None,
) -> Any:
    """Run ``config`` in ``nproc`` processes on this machine and return rank 0's result.

    Args:
        config: the resolved run config (checked again by every process).
        nproc: processes to start (one per GPU on a CUDA machine).
        entry: what each process runs, ``entry(config, run_id)``, importable by name
            (the processes are spawned); default :func:`run_in_group`. The CLI passes
            one that renders rank 0's progress.
        run_id: the run folder's name (default: a new id).

    On the CPU each process gets ``cores // nproc`` torch threads, unless
    ``OMP_NUM_THREADS`` is set.

    Raises:
        ConfigError: a bad ``nproc``, or called inside a distributed run.
        LaunchError: a process failed; the message is that process's error.
        KeyboardInterrupt: Ctrl-C or SIGTERM (the processes are stopped too).
    """
    from benchbox.records import rundir

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if distributed.env_world() is not None:
        raise ConfigError("--nproc starts its own processes; under torchrun leave it out")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    run_id = run_id or rundir.new_run_id(config.fusion, config.seg, config.seed)
    threads = 0 if "OMP_NUM_THREADS" in os.environ else max(1, (os.cpu_count() or 1) // nproc)
    launch_config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"benchbox-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
        max_restarts=0,
        start_method="spawn",
    )
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    try:
        with _quiet_launcher(), _env(**env):
            outputs = elastic_launch(launch_config, _rank_main)(
                config.to_dict(), run_id, threads, entry
            )
    except ChildFailedError as exc:
        _mark_killed_rank0(exc, config, run_id)
        raise LaunchError(_failure_message(exc, nproc)) from None
    except SignalException as exc:
        # The launcher stopped the processes on Ctrl-C or SIGTERM; rank 0 marked its run.
        sigval = getattr(exc, "sigval", None)
        raise (
            interrupts.Terminated(sigval) if sigval == signal.SIGTERM else KeyboardInterrupt()
        ) from None
    return outputs.get(0)


_PREFIX = re.compile(rf"^(?:{RankFailed.__name__}|[\w.]*\.{RankFailed.__name__}): ")


def _failure_message(exc: Any, nproc: int) -> str:
    """One line from the first failed process: its own error when it raised one, named
    by rank unless rank 0 failed the same way (a bad setting fails every rank)."""
    rank, failure = exc.get_first_failure()
    text = _failure_text(failure)
    same = [r for r, f in exc.failures.items() if _failure_text(f) == text]
    return text if rank == 0 or 0 in same else f"rank {rank} of {nproc}: {text}"


def _failure_text(failure: Any) -> str:
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    text = str(message or "").strip()
    if not text or text.startswith("<"):  # torch's placeholder when no error was recorded
        code = failure.exitcode
        if code == 130:
            return "interrupted"
        if isinstance(code, int) and code < 0:
            return f"killed by signal {-code} ({_signal_name(-code)})"
        return f"exited with code {code}"
    return _PREFIX.sub("", text.splitlines()[0])


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _mark_killed_rank0(exc: Any, config: RunConfig, run_id: str) -> None:
    """Rank 0 killed by a signal cannot record its run's end: its folder would say
    ``running`` for ever. The launcher saw it die, so it records it."""
    from pathlib import Path

    from benchbox.records.status import STATUS_FILE, mark_dead

    failure = exc.failures.get(0)
    code = getattr(failure, "exitcode", None)
    if isinstance(code, int) and code < 0:
        path = Path(config.out) / "runs" / run_id / STATUS_FILE
        mark_dead(path, "failed", f"rank 0 was killed by signal {-code} ({_signal_name(-code)})")
