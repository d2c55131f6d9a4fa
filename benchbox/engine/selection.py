"""Model selection on the validation split: what to maximise, when to stop, what to keep.

During the main training stage (joint training, or fusion-only training) the runner
scores the ``val`` split every ``val_every`` epochs and after the last one. The epoch
with the best selection metric is kept (its weights are copied to host memory) and is
the one written as the checkpoint and evaluated, once, on the test split. With
``patience`` the stage stops after that many validations without improvement.

Selection metrics are named after the validation columns:

* ``dice`` (the default of segmentation runs, being the segmentation metric registered
  with ``headline=1``): the mean over regions of the per-region Dice,
  ``dice_<region>`` one region only; any segmentation metric works the same way
  (``hd95`` is minimised because the metric says lower is better);
* ``loss`` (default of fusion-only runs): the fusion loss on the val split; a fusion
  metric column (``ssim_mean``, ``qabf``) may be chosen instead.

A model whose fused image or segmenter output holds NaN or infinite values on the val
split has diverged even if its training loss was finite (weights or normalisation
statistics blown up by the last updates; training uses the batch's statistics,
evaluation the running ones). Scoring it would be meaningless (argmax of NaN logits is
background everywhere, a Dice of 0 that could be "the best"), so validation stops the
run there with a :class:`~benchbox.errors.TrainingDivergedError` naming the stage, the
epoch, the first non-finite weight or statistic, and the learning rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchbox import errors
from benchbox.hooks.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUTO",
    "LOSS",
    "Monitor",
    "NonFiniteOutput",
    "Objective",
    "Selector",
    "first_non_finite",
    "resolve_objective",
    "val_columns",
    "validate",
]

AUTO = "auto"
LOSS = "loss"


@dataclass(frozen=True)
class Objective:
    """The validation column that selects the checkpoint, and its direction."""

    key: str
    higher_is_better: bool

    @property
    def mode(self) -> str:
        return "max" if self.higher_is_better else "min"

    def better(self, value: float, best: float | None) -> bool:
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


def resolve_objective(
    select: str, has_seg: bool, registry: Registry, regions: Mapping[str, Any]
) -> Objective:
    """Parse ``--select`` against the registered metrics and the dataset's regions.

    Raises:
        ConfigError: ``select`` names no validation column of this run.
    """
    task = "segmentation" if has_seg else "fusion"
    if select == AUTO and has_seg:
        from benchbox.metrics.suite import headline_metrics

        first = headline_metrics(task, registry)
        if not first:
            raise errors.ConfigError(
                "--select auto picks the segmentation metric registered with headline=1, "
                "and none is; name a validation metric with --select"
            )
        select = first[0].name
    elif select == AUTO:
        select = LOSS
    if select == LOSS and not has_seg:
        return Objective(LOSS, higher_is_better=False)
    metrics = [e for e in registry.list("metric") if e.info.get("task") == task]
    suffixes = [f"_{r}" for r in regions] if has_seg else []
    for entry in sorted(metrics, key=lambda e: len(e.name), reverse=True):
        stem = select
        for suffix in suffixes:
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        # A dict-valued metric names its columns ``<metric>_<key>`` (ssim_mean).
        if stem == entry.name or stem.startswith(entry.name + "_"):
            return Objective(select, bool(entry.info["higher_is_better"]))
    names = [e.name for e in metrics] + ([] if has_seg else [LOSS])
    example = f"{names[0]}{suffixes[0]}" if suffixes and names else ""
    raise errors.ConfigError(
        f"--select {select!r} is not a validation metric of a {task} run; use one of "
        f"{', '.join(sorted(names))}"
        + (f", optionally per region ({example}; regions {', '.join(regions)})" if example else "")
    )


def val_columns(summary: Mapping[str, float], regions: Mapping[str, Any]) -> dict[str, float]:
    """The validation metrics: every mean column of ``summary`` (no ``_std``, no counts)
    and, per segmentation metric, its mean over regions under the bare name."""
    from benchbox.metrics.summary import Summary

    out = Summary(summary).means()
    pooled: dict[str, list[float]] = {}
    for column, value in out.items():
        for region in regions:
            if column.endswith(f"_{region}"):
                pooled.setdefault(column[: -len(region) - 1], []).append(value)
                break
    for stem, values in pooled.items():
        if len(values) == len(regions):
            out.setdefault(stem, sum(values) / len(values))
    return out


@dataclass
class Selector:
    """Tracks the best validation epoch, keeps its weights, and decides early stopping."""

    objective: Objective
    patience: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    stale: int = 0
    best_state: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def offer(self, epoch: int, metrics: Mapping[str, float], modules: Mapping[str, Any]) -> bool:
        """Consider one validated epoch; returns whether it is the new best.

        Raises:
            ConfigError: the selection column is missing from ``metrics`` (a metric
                that returns a dict has columns not known before the first validation).
        """
        key = self.objective.key
        if key not in metrics:
            raise errors.ConfigError(
                f"--select {key!r}: no such validation column; columns: "
                f"{', '.join(sorted(metrics))}"
            )
        value = float(metrics[key])
        if not self.objective.better(value, self.best_value):
            self.stale += 1
            return False
        self.best_epoch, self.best_value, self.stale = epoch, value, 0
        self.best_state = {
            name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
            for name, m in modules.items()
            if m is not None
        }
        return True

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience

    def restore(self, modules: Mapping[str, Any]) -> None:
        """Load the best epoch's weights back into ``modules``."""
        for name, state in self.best_state.items():
            module = modules.get(name)
            if module is not None:
                module.load_state_dict(state)


def validate(
    dataset: Any,
    predictor: Any,
    *,
    fusion_loss: Any = None,
    batch_size: int = 64,
    nsd_tolerance: float = 1.0,
    max_cases: int = 0,
    postprocess: Any = None,
) -> dict[str, float]:
    """Score the ``val`` split: segmentation metrics for a run with a segmenter, else
    the fusion metrics and (given ``fusion_loss``) the mean fusion loss.

    A 3D dataset is validated on whole volumes like the test split; ``max_cases``
    (evenly spaced samples or volumes) keeps it cheap. ``postprocess`` is applied to
    the predicted labels first (:mod:`benchbox.engine.postprocess`).
    """
    import torch

    from benchbox.engine.inference import score_split, spread
    from benchbox.engine.train import make_loader

    has_seg = predictor.segmenter is not None
    result = score_split(
        dataset,
        predictor,
        split="val",
        batch_size=batch_size,
        nsd_tolerance=nsd_tolerance,
        examples=0,
        fusion_metrics=not has_seg,
        max_cases=max_cases,
        postprocess=postprocess,
    )
    metrics = val_columns(result.summary, dataset.eval_regions() if has_seg else {})
    if fusion_loss is not None and not has_seg:
        samples = spread(dataset.split("val"), max_cases)
        total, count = 0.0, 0
        for batch in make_loader(samples, batch_size, shuffle=False, seed=0):
            a, b = batch["a"].to(predictor.device), batch["b"].to(predictor.device)
            with torch.inference_mode(), predictor.amp.autocast():
                value = fusion_loss(predictor.fusion(a, b).float(), a, b)
            total += float(value) * a.shape[0]
            count += int(a.shape[0])
        metrics[LOSS] = total / max(count, 1)
    return metrics


class NonFiniteOutput(Exception):
    """Raised by the validation predictor when a model's output is not finite."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _checked_predictor(*args: Any, **kwargs: Any) -> Any:
    """A :class:`~benchbox.engine.inference.Predictor` that raises
    :class:`NonFiniteOutput` when the fused image or the segmenter's output is not finite."""
    import torch

    from benchbox.engine.inference import Predictor

    class Checked(Predictor):
        def __call__(self, a: Any, b: Any) -> Any:
            fused, labels, probs = super().__call__(a, b)
            for what, out in (("fused image", fused), ("segmenter output", probs)):
                if out is not None and not bool(torch.isfinite(out).all()):
                    raise NonFiniteOutput(what)
            return fused, labels, probs

    return Checked(*args, **kwargs)


def first_non_finite(modules: Mapping[str, Any]) -> str | None:
    """The first weight or buffer (running statistics) of ``modules`` that holds NaN or
    infinite values, as ``'name' (Kind) in Model``; ``None`` when all are finite."""
    import torch

    for module in modules.values():
        if module is None:
            continue
        for name, sub in module.named_modules():
            own = [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]
            for key, tensor in own:
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    where = f"{name}.{key}" if name else key
                    return f"{where!r} ({type(sub).__name__}) in {type(module).__name__}"
    return None


class Monitor:
    """The runner's end-of-epoch callback: validate when due, keep the best epoch, record
    the curve, tell observers (``emit``), and stop early when patience runs out.

    Args:
        prepared: the :class:`benchbox.engine.prepare.Prepared` run.
        log: one-line progress messages.
        emit: called as ``emit(stage, epoch, train_loss, val_metrics)`` after each epoch
            of every stage (``val_metrics`` empty when the epoch was not validated).
    """

    def __init__(self, prepared: Any, log: Any = None, emit: Any = None) -> None:
        p, c = prepared, prepared.config
        self.p, self.log, self.emit = p, log or (lambda _m: None), emit
        self.curve: list[dict[str, Any]] = []
        self.modules = {"fusion": p.models.fusion, "segmenter": p.models.segmenter}
        self.val_cases = _split_size(p.dataset, "val")
        self.note = ""
        if c.val_every == 0:
            self.note = "validation is off (--val-every 0): the last epoch is kept"
        elif self.val_cases == 0:
            self.note = (
                f"dataset {p.dataset.name!r} has no val split: the last epoch is kept "
                "(the test split is never used for selection)"
            )
        elif c.max_val_cases:
            self.val_cases = min(self.val_cases, c.max_val_cases)
        self.selector = Selector(p.objective, c.patience) if not self.note else None
        self.predictor = _checked_predictor(p.models.fusion, p.models.segmenter, p.device, p.amp)
        self.main_stage = ""
        self.last_epoch = 0

    def callback(self, stage: str, epochs: int, main: bool) -> Any:
        """The ``on_epoch_end`` callback of one stage of ``epochs`` epochs."""
        if main:
            self.main_stage = stage

        def on_epoch_end(epoch: int, train_loss: float) -> bool:
            c = self.p.config
            due = (
                main and self.selector is not None and (epoch % c.val_every == 0 or epoch == epochs)
            )
            val: dict[str, float] = {}
            if due:
                assert self.selector is not None
                try:
                    val = self._validate()
                except NonFiniteOutput as exc:
                    raise self._diverged(stage, epoch, train_loss, exc.what) from None
                best = self.selector.offer(epoch, val, self.modules)
                key = self.selector.objective.key
                if best:
                    standing = " (best)"
                elif self.selector.best_epoch is None:
                    standing = " (not finite: not selectable)"
                else:
                    standing = (
                        f" (best {self.selector.best_value:.4f} at epoch "
                        f"{self.selector.best_epoch})"
                    )
                self.log(
                    f"{stage} epoch {epoch}: train loss {train_loss:.4f}, val {key} "
                    f"{val[key]:.4f}{standing}"
                )
            if main:
                self.last_epoch = epoch
            self.curve.append(
                {"stage": stage, "epoch": epoch, "train_loss": train_loss, "val": val}
            )
            if self.emit is not None:
                self.emit(stage, epoch, train_loss, val)
            return bool(due and self.selector is not None and self.selector.should_stop)

        return on_epoch_end

    def _diverged(
        self, stage: str, epoch: int, train_loss: float, what: str
    ) -> errors.TrainingDivergedError:
        """The error for a model whose val outputs are not finite (see the module
        docstring)."""
        c = self.p.config
        flag, lr = ("--fusion-lr", c.fusion_lr) if stage == "fusion" else ("--lr", c.lr)
        culprit = first_non_finite(self.modules)
        cause = (
            f"{culprit} is not finite"
            if culprit
            else "its weights and statistics are finite, so a layer overflowed"
        )
        amp = ", or try --amp off" if self.p.amp.mode != "off" else ""
        return errors.TrainingDivergedError(
            f"the {stage} stage diverged: after epoch {epoch} (train loss {train_loss:.4g}) "
            f"the model's {what} on the val split holds NaN or infinite values ({cause}); "
            f"lower the learning rate ({flag} {lr:g}){amp}; the run is marked failed"
        )

    @property
    def objective(self) -> Objective | None:
        """The selection objective; ``None`` when nothing is validated."""
        return self.selector.objective if self.selector is not None else None

    def validator(self) -> Any:
        """``score(postprocess)`` -> the val columns of the current weights, with the
        labels post-processed and the run's ``--tta`` (selection itself scores single
        passes); ``None`` when the run does not validate."""
        if self.selector is None:
            return None
        from benchbox.engine.inference import Predictor

        p = self.p
        final = Predictor(p.models.fusion, p.models.segmenter, p.device, p.amp, tta=p.config.tta)
        return functools.partial(self._validate, predictor=final)

    def _validate(self, postprocess: Any = None, predictor: Any = None) -> dict[str, float]:
        modes = {m: m.training for m in self.modules.values() if m is not None}
        for m in modes:
            m.eval()
        try:
            return validate(
                self.p.dataset,
                predictor or self.predictor,
                fusion_loss=self.p.models.fusion_loss,
                batch_size=self.p.config.eval_batch_size,
                nsd_tolerance=self.p.config.nsd_tolerance,
                max_cases=self.p.config.max_val_cases,
                postprocess=postprocess,
            )
        finally:
            for m, training in modes.items():
                m.train(training)

    def finish(self) -> dict[str, Any]:
        """Load the selected epoch's weights and return the selection record."""
        sel = self.selector
        record: dict[str, Any] = {
            "stage": self.main_stage,
            "epochs_run": self.last_epoch,
            "val_every": self.p.config.val_every,
            "val_cases": self.val_cases if sel is not None else 0,
            "patience": self.p.config.patience,
            "note": self.note,
        }
        if self.last_epoch == 0:
            record["note"] = "nothing was trained (no trainable parameters): nothing to select"
            sel = None
        if sel is None or sel.best_epoch is None:
            if sel is not None:
                record["note"] = "no validation score was finite: the last epoch is kept"
            return {
                **record,
                "metric": None,
                "mode": None,
                "epoch": self.last_epoch,
                "value": None,
                "stopped_early": False,
            }
        sel.restore(self.modules)
        return {
            **record,
            "metric": sel.objective.key,
            "mode": sel.objective.mode,
            "epoch": sel.best_epoch,
            "value": sel.best_value,
            "stopped_early": self.last_epoch < self.p.config.epochs,
        }


def _split_size(dataset: Any, split: str) -> int:
    if split not in getattr(dataset, "splits", (split,)):
        return 0
    try:
        return len(dataset.split(split))
    except errors.DataError:
        return 0
