"""``benchbox sweep`` as a library call: plan the runs of a grid, run them through an
executor, keep the ledger, and compare what completed.

A sweep lives in ``<out>/sweeps/<name>/``: ``ledger.csv`` (one line per run, see
:mod:`benchbox.sweep.ledger`), ``grid.json`` (the settings and axes it was started
with) and ``logs/<index>-<config hash>.log`` (each run's log). The runs write their run
folders and leaderboard rows to ``<out>`` exactly as ``benchbox run --out <out>`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox import config as cfg
from benchbox.errors import BenchboxError, ConfigError
from benchbox.hooks.registry import Registry
from benchbox.records.leaderboard import completed_runs
from benchbox.sweep.executor import Executor, Job, Outcome
from benchbox.sweep.grid import Grid
from benchbox.sweep.ledger import LEDGER_FILE, Entry, Ledger, plan

__all__ = [
    "LOCK_FILE",
    "OWNER_FILE",
    "PlannedRun",
    "SweepResult",
    "SweepState",
    "check_sweep_name",
    "compare_completed",
    "new_run_id",
    "own",
    "plan_runs",
    "portable",
    "run_sweep",
    "sweep_name",
]


@dataclass
class PlannedRun:
    """One combination of the grid, resolved into the config ``benchbox run`` would use.

    ``config_hash`` is the hash the run will record on the leaderboard (the precision
    resolved on this machine, :func:`benchbox.engine.device.config_hash`), so the ledger
    and the leaderboard name a run alike.
    """

    axes: dict[str, Any]
    config: cfg.RunConfig
    config_hash: str = ""

    def __post_init__(self) -> None:
        if not self.config_hash:
            from benchbox.engine.device import config_hash

            self.config_hash = config_hash(self.config)


def plan_runs(
    grid: Grid,
    preset: str | None = None,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> list[PlannedRun]:
    """Resolve every combination of ``grid`` into a checked run config.

    Precedence for each run: defaults < preset < config file < ``overrides`` (the
    command line's fixed options) < the grid's base settings < the combination. Every
    combination goes through the pre-flight check of ``benchbox run``
    (:func:`benchbox.engine.models.check`): a bad value anywhere (a name, a ``--loss-opt``
    key, a tracker, a transform option, ``--select``) stops the sweep before anything
    runs, naming the run.
    """
    from benchbox.engine.models import check
    from benchbox.hooks.manager import get_registry

    registry = registry or get_registry()
    runs: list[PlannedRun] = []
    seen: dict[str, dict[str, Any]] = {}
    fixed = dict(overrides or {})
    for combo in grid.combinations():
        layers = grid.layers(combo)
        name = fixed.get("preset", preset)
        for _, values in layers:
            name = values.get("preset", name)
        try:
            config = cfg.resolve(name, config_file, fixed, layers)
        except ConfigError as exc:
            label = " ".join(f"{k}={v}" for k, v in combo.items())
            raise ConfigError(f"run {label or '(no axes)'}: {exc}") from None
        try:
            check(config, registry)
        except BenchboxError as exc:
            label = " ".join(f"{k}={v}" for k, v in combo.items())
            raise ConfigError(f"run {label or '(no axes)'}: {exc}") from None
        run = PlannedRun(dict(combo), config)
        if run.config_hash in seen:
            raise ConfigError(
                f"two combinations make the same run ({seen[run.config_hash]} and {combo}): "
                "an axis value has no effect on the config"
            )
        seen[run.config_hash] = combo
        runs.append(run)
    if not runs:
        raise ConfigError("the grid is empty: every combination is excluded")
    return runs


def sweep_name(runs: Sequence[PlannedRun]) -> str:
    """The default name of a sweep: a short hash of its runs' config hashes, so the same
    command resumes the same sweep."""
    blob = "\n".join(r.config_hash for r in runs).encode()
    return "sweep-" + hashlib.sha256(blob).hexdigest()[:8]


def portable(config: cfg.RunConfig) -> cfg.RunConfig:
    """``config`` with its output folders and dataset path absolute, as the driver sees
    them: a worker on a Ray cluster runs in the cluster's working folder, where relative
    paths would put its run folder and leaderboard row. Paths that are part of the
    config hash (weights files) are left as given, so the hash does not change."""
    import dataclasses

    changes: dict[str, Any] = {"out": os.path.abspath(config.out)}
    if config.leaderboard_dir:
        changes["leaderboard_dir"] = os.path.abspath(config.leaderboard_dir)
    root = config.dataset_root
    if root and "://" not in root:
        changes["dataset"] = f"{config.dataset_name}:{os.path.abspath(os.path.expanduser(root))}"
    moved = dataclasses.replace(config, **changes)
    if moved.hash() != config.hash():  # e.g. a dataset path ending in '..'
        moved.dataset = config.dataset
    return moved


def new_run_id(config: cfg.RunConfig) -> str:
    """A new run id for ``config`` (:func:`benchbox.records.rundir.new_run_id`)."""
    from benchbox.records.rundir import new_run_id as make

    return make(config.fusion, config.seg, config.seed)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_sweep_name(name: str | None) -> str | None:
    """A sweep's name is one folder under ``<out>/sweeps/``: letters, digits, ``.``,
    ``-`` and ``_``, starting with a letter or digit (so never ``..`` nor a path).

    Raises:
        ConfigError: it is not.
    """
    if name is not None and not _NAME.match(name):
        raise ConfigError(
            f"--name {name!r}: a sweep name is one folder name under OUT/sweeps/ "
            "(letters, digits, '.', '-', '_'; starting with a letter or digit)"
        )
    return name


@dataclass
class SweepState:
    """What the driver knows while the sweep runs (read by the CLI's live table)."""

    ledger: Ledger
    todo: int
    slots: int = 1
    started_at: float = field(default_factory=time.monotonic)
    running: dict[int, float] = field(default_factory=dict)
    finished_walls: list[float] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def eta(self) -> float | None:
        """Seconds left: the mean wall time of this sweep's finished runs times the runs
        still to start, spread over the executor's slots, plus what the running ones
        still need. None until a run has finished."""
        if not self.finished_walls:
            return None
        mean = sum(self.finished_walls) / len(self.finished_walls)
        counts = self.ledger.counts()
        now = time.monotonic()
        running_left = sum(max(0.0, mean - (now - t)) for t in self.running.values())
        queued = counts["queued"]
        return (queued * mean + running_left) / max(1, self.slots)


@dataclass
class SweepResult:
    """How a sweep ended.

    ``skipped`` counts the runs not run now: ``skipped_failed`` of them failed earlier
    in this sweep, ``on_leaderboard`` of them were already on their leaderboard
    (completed by another sweep or ``benchbox run``, a lost ledger or a killed driver).
    """

    folder: Path
    ledger: Ledger
    interrupted: bool
    skipped: int
    skipped_failed: int = 0
    on_leaderboard: int = 0


class _Events:
    def __init__(self, state: SweepState, entries: dict[int, Entry], notify: Callable[[], None]):
        self.state = state
        self.entries = entries
        self.notify = notify
        self.lock = threading.Lock()

    def started(self, job: Job) -> None:
        with self.lock:
            self.state.running[job.index] = time.monotonic()
            self.state.ledger.update(
                self.entries[job.index],
                status="running",
                run_id=job.run_id,
                started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                error="",
            )
        self.notify()

    def ended(self, job: Job, outcome: Outcome) -> None:
        with self.lock:
            self.state.running.pop(job.index, None)
            if outcome.status != "interrupted":
                self.state.finished_walls.append(outcome.wall_s)
            status = outcome.status if outcome.status in ("completed", "failed") else "interrupted"
            self.state.ledger.update(
                self.entries[job.index],
                status=status,
                run_id=outcome.run_id or job.run_id,
                error=outcome.error,
                wall_s=outcome.wall_s,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
        self.notify()


def run_sweep(
    runs: Sequence[PlannedRun],
    executor: Executor,
    out: str | Path,
    name: str | None = None,
    retry_failed: bool = False,
    on_start: Callable[[SweepState], None] | None = None,
    notify: Callable[[], None] | None = None,
    rerun: bool = False,
) -> SweepResult:
    """Run every planned run not already completed.

    A run is skipped when it completed in this sweep's ledger, failed there (unless
    ``retry_failed``), or when its config hash already has a row in the leaderboards of
    its leaderboard folder (a completed run, whoever ran it): its ledger line then
    names that row's run. ``rerun`` runs every planned run again, adding new rows.

    Ctrl-C (KeyboardInterrupt) stops the executor's running runs, which mark their run
    folders ``interrupted``; the ledger says ``interrupted`` for them and ``queued`` for
    those never started, and the sweep returns with ``interrupted=True``.

    One driver owns a sweep folder at a time (:func:`own`): a second one on the same
    folder (the same command run twice at once) is refused before it writes anything.

    Raises:
        ConfigError: another driver runs this sweep, the ledger is damaged, or a
            leaderboard cannot be read.
    """
    # Absolute: an executor's workers may run in another folder (a Ray cluster's).
    folder = (
        Path(os.path.abspath(out)) / "sweeps" / (check_sweep_name(name or None) or sweep_name(runs))
    )
    folder.mkdir(parents=True, exist_ok=True)
    with own(folder):
        return _run(runs, executor, folder, retry_failed, on_start, notify, rerun)


#: The file a sweep's driver holds a lock on while it runs, and its owner's description.
LOCK_FILE = "driver.lock"
OWNER_FILE = "driver.json"


@contextmanager
def own(folder: Path) -> Iterator[None]:
    """Hold the sweep folder's lock: one driver per sweep at a time.

    The lock is the operating system's (``filelock``), so a driver that is killed
    releases it with its process. The owner (pid, host, start) is written beside it
    for the message a second driver gets.

    Raises:
        ConfigError: another driver holds it.
    """
    from filelock import FileLock, Timeout

    from benchbox.records.atomic import write_text

    lock = FileLock(str(folder / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"sweep {folder} is already being run by another benchbox sweep{_owner(folder)}: "
            "wait for it to end, or give this one another --name"
        ) from None
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_text(folder / OWNER_FILE, json.dumps(owner) + "\n")
        yield
    finally:
        lock.release()


def _owner(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        return f" (pid {owner['pid']} on {owner['host']}, since {owner['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _run(
    runs: Sequence[PlannedRun],
    executor: Executor,
    folder: Path,
    retry_failed: bool,
    on_start: Callable[[SweepState], None] | None,
    notify: Callable[[], None] | None,
    rerun: bool,
) -> SweepResult:
    (folder / "grid.json").write_text(
        json.dumps([{"axes": r.axes, "config_hash": r.config_hash} for r in runs], indent=1)
    )
    ledger, todo = plan(
        folder / LEDGER_FILE, [(r.config_hash, r.axes) for r in runs], retry_failed, rerun
    )
    on_leaderboard = 0
    if not rerun:
        boards = {f: completed_runs(f) for f in {runs[e.index].config.leaderboards for e in todo}}
        for entry in list(todo):
            run_id = boards[runs[entry.index].config.leaderboards].get(entry.config_hash)
            if run_id is not None:
                ledger.update(entry, status="completed", run_id=run_id, error="")
                todo.remove(entry)
                on_leaderboard += 1
    state = SweepState(ledger, len(todo), getattr(executor, "slots", 1))
    by_index = {e.index: e for e in ledger}
    jobs = [
        Job(
            index=e.index,
            config_hash=e.config_hash,
            config=portable(runs[e.index].config).to_dict(),
            log_path=str(folder / "logs" / f"{e.index:03d}-{e.config_hash}.log"),
            run_id=new_run_id(runs[e.index].config),
        )
        for e in todo
    ]
    stop = threading.Event()
    events = _Events(state, by_index, notify or (lambda: None))
    if on_start is not None:
        on_start(state)
    interrupted = False
    error: list[BaseException] = []

    done = threading.Event()

    def target() -> None:
        try:
            executor.run(jobs, events, stop)
        except BaseException as exc:  # surfaced in the driver's thread below
            error.append(exc)
        finally:
            done.set()

    # The driver waits on an Event rather than Thread.join(): a Ctrl-C that interrupts
    # join() can leave the thread looking finished while it still runs (CPython's
    # tstate-lock race), and the ledger would then be closed under a running run.
    threading.Thread(target=target, daemon=True, name="sweep-executor").start()
    try:
        if jobs:
            _import_summary()
        while not done.wait(0.2):
            state.slots = getattr(executor, "slots", state.slots)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        while not done.is_set():
            try:
                done.wait(0.5)
            except KeyboardInterrupt:  # a second Ctrl-C: the workers are already told
                continue
    with events.lock:
        for entry in ledger:
            if entry.status == "running":  # the executor did not report it: say so
                ledger.update(entry, status="interrupted", error="the sweep was stopped")
    if error:
        raise error[0]
    todo_ids = {e.index for e in todo}
    skipped_failed = sum(1 for e in ledger if e.index not in todo_ids and e.status == "failed")
    return SweepResult(
        folder, ledger, interrupted, len(runs) - len(todo), skipped_failed, on_leaderboard
    )


def _import_summary() -> None:
    """Import what :func:`compare_completed` uses (pandas above all), while the first
    runs start: the driver only waits then, and after the last run the user would wait
    for these imports (about 0.5 s on a small machine)."""
    import pandas  # noqa: F401

    import benchbox.analysis.methods  # noqa: F401


def compare_completed(
    result: SweepResult, folders: Iterable[str | Path]
) -> list[tuple[Path, list[str], Any]]:
    """The sweep's completed runs compared over seeds: for each leaderboard file in
    ``folders`` (the runs' leaderboard folders) they were appended to, the mean and std of
    each metric (:func:`benchbox.analysis.methods.method_table`) per combination of the sweep's axes
    other than ``seed``. Returns (leaderboard path, group columns, table) triples."""
    import pandas as pd

    from benchbox.analysis.methods import method_table
    from benchbox.records import leaderboard

    done = [e for e in result.ledger if e.status == "completed" and e.run_id]
    if not done:
        return []
    axes = [a for a in done[0].axes if a != "seed"]
    labels = pd.DataFrame(
        [{"run_id": e.run_id, **{a: str(e.axes.get(a)) for a in axes}} for e in done]
    )
    tables = []
    files = sorted({p for folder in folders for p in Path(folder).glob("*.csv")})
    for path in files:
        if path.name.endswith(".cases.csv"):
            continue
        frame = leaderboard.read(path)
        if "run_id" not in frame.columns:
            continue
        mine = frame[frame["run_id"].isin(labels["run_id"])]
        if mine.empty:
            continue
        mine = mine.drop(columns=[a for a in axes if a in mine.columns]).merge(labels, on="run_id")
        by = axes or ["dataset"]
        tables.append((path, by, method_table(mine, by, _headline(mine))))
    return tables


def _headline(frame: Any, most: int = 5) -> list[str]:
    """The few metrics that fit a terminal: the headline segmentation metrics of every
    region for segmentation runs, otherwise the first headline fusion metrics
    (:func:`benchbox.records.leaderboard.headline_columns`), then the training speed.
    ``benchbox compare`` and ``benchbox leaderboard`` show the rest."""
    from benchbox.records import leaderboard

    columns = [c for c in frame.columns if frame[c].notna().any()]
    pool = leaderboard.headline_columns(columns, "segmentation") or leaderboard.headline_columns(
        columns, "fusion"
    )
    picked = pool[: most - 1]
    if "train_img_s" in columns:
        picked.append("train_img_s")
    return picked
