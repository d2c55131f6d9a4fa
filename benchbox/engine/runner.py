"""``benchbox run`` as a library call: check everything, train, evaluate, record.

:func:`run` is :func:`benchbox.engine.prepare.prepare` (every input checked, the dataset and
models built, before training starts) then :func:`execute` (train, select, test,
record). A leaderboard row is appended only when the run has finished and its records
are written; a failed or interrupted run leaves its run folder marked as such and no
row.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbox import errors
from benchbox.config.run import RunConfig
from benchbox.engine import interrupts
from benchbox.engine.models import image_size_in_effect
from benchbox.engine.prepare import Log, Prepared, prepare
from benchbox.engine.schedule import train_stages
from benchbox.engine.selection import Monitor
from benchbox.engine.train import ProgressReporter
from benchbox.hooks.lifecycle import Observers
from benchbox.hooks.registry import Registry
from benchbox.hookspecs import RunInfo

__all__ = ["RunResult", "execute", "run"]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    leaderboard: Path
    summary: dict[str, float]
    record: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def _stages(p: Prepared, progress: ProgressReporter | None, monitor: Monitor) -> list[Any]:
    """Fusion pre-training (or fusion-only training), then joint training, validated by
    ``monitor``; a crash in a plugin's code is reported as that plugin's bug."""
    from benchbox.hooks.registry import blame_plugins

    with blame_plugins(p.components(), "while training"):
        return train_stages(p, progress, monitor)


def execute(
    p: Prepared,
    progress: ProgressReporter | None = None,
    log: Log | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Train and evaluate a prepared run, write its records, append its leaderboard row.

    ``run_id`` names the run folder (default: a new id from
    :func:`benchbox.records.rundir.new_run_id`); a sweep gives it, so that its ledger can point
    to the folder of a run that failed.

    A SIGTERM is handled like Ctrl-C (:mod:`benchbox.engine.interrupts`): the run is marked
    ``interrupted``. A run that fails is marked ``failed`` with the reason; a failed write
    (e.g. a full disk) is raised as one :class:`~benchbox.errors.WriteError` line.
    Observers hear ``run_started``, ``epoch_ended`` and, from a ``finally``,
    ``run_finished`` (see :mod:`benchbox.hooks.lifecycle`).
    """
    with interrupts.sigterm_as_interrupt():
        return _execute(p, progress, log, run_id)


def _execute(
    p: Prepared, progress: ProgressReporter | None, log: Log | None, run_id: str | None
) -> RunResult:
    from benchbox.engine.device import device_name
    from benchbox.engine.distributed import describe
    from benchbox.engine.models import model_io
    from benchbox.records import rundir

    log = log or (lambda _msg: None)
    c = p.config
    t_start = time.perf_counter()
    run_id = run_id or rundir.new_run_id(c.fusion, c.seg, c.seed)
    run = rundir.RunDir(c.out, run_id).create()
    info = RunInfo(run_id, run.path, c.to_dict(), c.hash(p.amp.mode))
    observers = Observers(
        p.registry.plugin_manager, p.trackers, warn=lambda m: log(f"warning: {m}")
    )
    files: dict[str, Path] = {
        "config": run.file("config.json"),
        "environment": run.file("environment.json"),
    }
    metrics: dict[str, Any] = {}
    board: Path | None = None
    status, error = "failed", None
    with observers:
        try:
            amp_record = {
                "requested": p.amp.requested,
                "mode": p.amp.mode,
                "observed_dtype": p.amp_observed,
                "reason": p.amp.reason,
            }
            env = rundir.environment(p.device, device_name(p.device), amp_record, p.registry)
            env["distributed"] = describe(p.dist, c.batch_size)
            run.write_json(
                "config.json",
                {
                    **c.to_dict(),
                    "config_hash": info.config_hash,
                    "dataset_config": p.dataset.config(),
                    "model_io": model_io(p.dataset, c),
                    "distributed": env["distributed"],
                },
            )
            run.write_json("environment.json", env)
            log(f"run {run_id}: device {env['device_name']}, amp {p.amp.mode} ({p.amp.reason})")
            observers.call("run_started", run=info)
            board, metrics = _train_and_test(
                p, run, files, progress, log, t_start, env, amp_record, observers, info
            )
            status = "completed"
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            error = _reason(exc)
            note = ""
            if status == "failed" and "checkpoint" in files and not isinstance(exc, OSError):
                note = f" (after training; the selected checkpoint is {files['checkpoint']})"
            if isinstance(exc, interrupts.Terminated) and p.dist is not None and p.dist.active:
                note = (
                    " (a distributed run: the launcher stops every process when one of them "
                    "fails; see its output)"
                )
            _record_end(run, exc, board, log, note)
            error += note
            raise
        finally:
            observers.call(
                "run_finished",
                run=info,
                status=status,
                summary=dict(metrics.get("summary", {})) if status == "completed" else {},
                record=metrics if status == "completed" else {},
                files={k: v for k, v in files.items() if v.exists()},
                error=error,
            )
    assert board is not None
    return RunResult(run_id, run.path, board, metrics["summary"], metrics, files)


def _train_and_test(
    p: Prepared,
    run: Any,
    files: dict[str, Path],
    progress: ProgressReporter | None,
    log: Log,
    t_start: float,
    env: dict[str, Any],
    amp_record: dict[str, Any],
    observers: Observers,
    info: RunInfo,
) -> tuple[Path, dict[str, Any]]:
    """The body of :func:`execute`: train, select, test, record; returns the leaderboard
    and the metrics record. ``files`` is filled as files are written."""
    from benchbox import __version__
    from benchbox.config.volumes import format_triple
    from benchbox.engine import postprocess as post
    from benchbox.engine.distill import describe as describe_distillation
    from benchbox.engine.inference import Predictor, score_split
    from benchbox.engine.memory import PeakMemory
    from benchbox.engine.models import input_shape
    from benchbox.engine.models import profile as model_profile
    from benchbox.engine.windows import Windows
    from benchbox.hooks.registry import blame_plugins
    from benchbox.records import atomic, leaderboard, rundir
    from benchbox.scoring.examples import save_examples

    c = p.config

    def epoch_ended(stage: str, epoch: int, loss: float, val: dict[str, float]) -> None:
        observers.call(
            "epoch_ended", run=info, stage=stage, epoch=epoch, train_loss=loss, val_metrics=val
        )

    monitor = Monitor(p, log, emit=epoch_ended)
    memory = PeakMemory(p.device)
    memory.start()
    stages = _stages(p, progress, monitor)
    selection = monitor.finish()
    if selection["note"]:
        log(selection["note"])
    else:
        log(
            f"selected epoch {selection['epoch']} of {selection['stage']} by val "
            f"{selection['metric']} = {selection['value']:.4f} ({selection['mode']})"
        )
    p.models.eval()
    # The selected weights are saved before the test split is touched: a metric that
    # fails below leaves a failed run with its checkpoint.
    files["checkpoint"] = rundir.save_checkpoint(
        run.file("checkpoint.pt"), {"fusion": p.models.fusion, "segmenter": p.models.segmenter}
    )
    predictor = Predictor(
        p.models.fusion, p.models.segmenter, p.device, p.amp, c.tta, Windows.of(c)
    )
    save_dir = run.file("predictions") if c.save_predictions else None
    with blame_plugins(p.components(), "while evaluating"):
        # Decided on the val split, with the selected weights, before the test split.
        postprocess = post.choose(c.postprocess, monitor.validator(), monitor.objective, p.registry)
        if c.postprocess == post.AUTO:
            log(_describe_postprocess(postprocess))
        result = score_split(
            p.dataset,
            predictor,
            split="test",
            batch_size=c.eval_batch_size,
            nsd_tolerance=c.nsd_tolerance,
            examples=c.examples,
            save_predictions=save_dir,
            postprocess=post.postprocessor(postprocess["applied"]),
        )
    for note in result.notes:
        log(note)
    peak = memory.high_water()  # before the profile's own forward passes
    shape = input_shape(c)
    profile = model_profile(p.models.fusion, p.models.segmenter, shape, p.device)
    wall = time.perf_counter() - t_start
    # The run's main stage: joint (or segmentation-only, or fusion-only) training.
    main = stages[-1] if stages else None
    world = env["distributed"]["world_size"]
    throughput = {
        "world_size": world,  # the images/s below are global: every process's images
        "train_stage": main.name if main else None,
        "train_img_s": main.images_per_s if main and main.timed_seconds else None,
        "train_excluded_steps": main.excluded_steps if main else 0,
        "stage_img_s": {s.name: s.images_per_s for s in stages},
        "infer_img_s": result.infer_images_per_s,
        "infer_images": result.infer_images,
        "infer_seconds": result.infer_seconds,
        "infer_unit": "slices of whole volumes" if c.is_3d else "images",
        "peak_mem_mb": None if peak is None else round(peak / 2**20, 1),
        "peak_mem_method": memory.method,
        "peak_mem_scope": "the process, from the start of training to the end of testing",
        # With a teacher, each training step also runs its forward pass (train_img_s
        # includes it); inference, profile and bench are the student's alone.
        "teacher_in_train_step": p.models.distillation is not None,
    }
    metrics = {
        "summary": result.summary,
        "selection": selection,
        "postprocess": postprocess,
        "tta": c.tta,
        "curve": monitor.curve,
        "stages": [s.to_dict() for s in stages],
        "throughput": throughput,
        "profile": profile,
        "profile_input": {
            "per": "patch" if c.is_3d else "image",
            "shape": [1, 1, *shape],  # params and GFLOPs are for one such input
        },
        "amp": amp_record,
        "wall_s": wall,
        "notes": result.notes + ([selection["note"]] if selection["note"] else []),
        "observer_failures": dict(observers.failed),
    }
    if p.models.distillation is not None:
        metrics["distillation"] = {
            "teacher": p.models.distillation.teacher,
            "distillers": {n: c.distill_opts.get(n) or {} for n in c.distill},
            "weight": c.distill_weight,
        }
    files["metrics"] = run.write_json("metrics.json", metrics)
    files["per_case"] = run.file("per_case.csv")
    atomic.write_text(files["per_case"], result.per_case.to_csv(index=False))
    examples = save_examples(run.file("examples.png"), result.examples, p.dataset.modalities)
    if examples:
        files["examples"] = examples
    if result.saved_predictions:
        files["predictions"] = run.file("predictions")

    row = {
        "run_id": run.run_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "dataset": p.dataset.name,
        "task": c.task,
        "fusion": c.fusion,
        "segmenter": c.seg,
        "loss": c.loss if c.has_seg else "",
        "fusion_loss": c.fusion_loss if p.models.fusion_loss else "",
        "augment": ",".join(c.augment) or "none",
        "postprocess": postprocess["applied"] if c.has_seg else "",
        "tta": c.tta if c.has_seg else "",
        "teacher": p.models.distillation.teacher["run_id"] if p.models.distillation else "",
        "distill": describe_distillation(c),
        "seed": c.seed,
        "data_seed": c.data_seed,
        "fold": _fold(p.dataset),
        "preset": c.preset,
        "fusion_epochs": c.fusion_epochs if c.has_seg else 0,
        "epochs": c.epochs,
        "selected_epoch": selection["epoch"],
        "select_metric": f"val_{selection['metric']}" if selection["metric"] else "last epoch",
        "select_value": selection["value"],
        # blank where the volumes keep their own grid (a 3D run on scans)
        "image_size": c.image_size
        if p.dataset_entry is None or image_size_in_effect(p.dataset_entry, c)
        else "",
        "patch_size": format_triple(c.patch),
        "spacing": format_triple(c.target_spacing),
        "amp": p.amp.mode,
        "device": env["device_name"],
        "world_size": world,
        **result.summary,
        "train_img_s": throughput["train_img_s"],
        "infer_img_s": throughput["infer_img_s"],
        "peak_mem_mb": throughput["peak_mem_mb"],
        **profile,
        "wall_s": wall,
        "config_hash": c.hash(p.amp.mode),
        "benchbox_version": __version__,
        "torch_version": env["torch"],
        "python_version": env["python"],
        "plugin_versions": ";".join(f"{k}={v}" for k, v in env["plugin_distributions"].items()),
    }
    board = leaderboard.append_row(
        c.leaderboards / f"{p.dataset.name}.csv",
        row,
        cases=result.per_case.to_dict("records"),
    )
    run.set_status("completed", wall_s=round(wall, 2), leaderboard=str(board))
    return board, metrics


def run(
    config: RunConfig,
    progress: ProgressReporter | None = None,
    log: Log | None = None,
    registry: Registry | None = None,
) -> RunResult:
    """Check, train, evaluate and record one run."""
    return execute(prepare(config, registry, log), progress, log)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return interrupts.describe(exc)
    if isinstance(exc, errors.BenchboxError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _record_end(run: Any, exc: BaseException, board: Path | None, log: Log, note: str = "") -> None:
    """Mark a run that did not complete ``interrupted`` or ``failed``, with the reason
    (and ``note``).

    A failed write (a full disk...) is re-raised as one WriteError line that also says
    whether the status could be recorded; a status file that cannot be written is added
    to any other benchbox error's line, or logged.
    """
    from benchbox.records.atomic import describe_errno, write_error

    if (
        isinstance(exc, OSError)
        and not isinstance(exc, errors.WriteError)
        and exc.errno in _DISK_ERRNOS
    ):
        exc = write_error(exc, exc.filename or run.path)
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    reason = _reason(exc) + note
    if board is None:
        reason += "; no leaderboard row"
    else:
        reason += f"; its leaderboard row was already appended to {board}"
    try:
        run.set_status(status, reason)
    except errors.WriteError as status_exc:
        message = (
            f"{run.status.path} could not be updated either "
            f"({describe_errno(status_exc.errno)}) and still says running"
        )
        if isinstance(exc, errors.WriteError):
            raise errors.WriteError(f"{exc}; {message}", exc.errno, exc.filename) from exc
        if isinstance(exc, errors.BenchboxError):
            exc.args = (f"{exc}; {message}",)
        else:
            log(f"run {run.run_id}: {message}")
        return
    if isinstance(exc, errors.WriteError):
        message = f"{exc}; run {run.run_id} is marked {status}"
        raise errors.WriteError(message, exc.errno, exc.filename) from exc


#: OSError numbers that mean "the disk cannot take this write".
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _describe_postprocess(record: dict[str, Any]) -> str:
    """One log line: which post-processing ``auto`` chose, and on what."""
    if record["note"]:
        return record["note"]
    values = ", ".join(f"{k} {v:.4f}" for k, v in record["val"].items())
    return f"post-processing: {record['applied']} (val {record['metric']}: {values})"


def _fold(dataset: Any) -> str:
    """``"k/n"`` for fold k of n-fold cross-validation by case, else empty."""
    described = dataset.config()
    return f"{described['fold']}/{described['folds']}" if described.get("folds") else ""
