"""The hooks a benchbox plugin implements. This file is the plugin API's reference.

A plugin is a module (or any object) with functions decorated by
:data:`benchbox.hookimpl` whose names are the hooks below. A package makes its plugin
known by declaring an entry point in the ``benchbox`` group of its ``pyproject.toml``::

    [project.entry-points.benchbox]
    my_models = "my_package.benchbox_plugin"

Each ``register_*`` hook receives one argument, ``register``, a callback with the signature of
:class:`Register`. The plugin calls it once per component; benchbox owns the tables.
Hooks are called through pluggy's hook caller: ``tryfirst``/``trylast`` and hook
wrappers work as pluggy documents. A plugin's registrations are kept only if none of
its hooks raises. A name that two providers register for the same kind is kept twice
and listed as a conflict; a run that uses it fails naming both providers until the
user disables one (``benchbox --disable NAME``).

A factory refuses a parameter value by raising ``ValueError`` (reported as the user's
configuration error); any other exception raised by a factory, a ``forward``, a loss or
a metric is reported as a bug of the plugin that registered it.

Conventions shared by every contract below (``B`` batch, ``H``/``W`` height/width):

* source images are ``float32`` tensors ``(B, 1, H, W)`` with values in ``[0, 1]``;
* a fused image is a ``float32`` tensor ``(B, 1, H, W)`` with values in ``[0, 1]``;
* a segmentation target is an ``int64`` tensor ``(B, H, W)`` of class indices in
  ``[0, K)``, class 0 being the background;
* segmentation logits are a floating tensor ``(B, K, H, W)``, unnormalised.

The run-lifecycle hooks at the end (``run_started``, ``epoch_ended``, ``run_finished``)
let a plugin observe runs; trackers (``register_trackers``) are built on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pluggy

__all__ = [
    "PROJECT",
    "Register",
    "RunInfo",
    "epoch_ended",
    "hookimpl",
    "hookspec",
    "open_inputs",
    "register_datasets",
    "register_executors",
    "register_fusions",
    "register_losses",
    "register_metrics",
    "register_regions",
    "register_segmenters",
    "register_trackers",
    "register_transforms",
    "run_finished",
    "run_started",
]

PROJECT = "benchbox"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class RunInfo:
    """Who the lifecycle hooks are about: one run.

    Attributes:
        run_id: the run's id, also its folder name.
        run_dir: the run folder (``<out>/runs/<run_id>``), which exists.
        config: the resolved run configuration (every setting, as recorded in
            ``config.json``), JSON-serialisable.
        config_hash: the experiment's hash, as in the leaderboard.
    """

    run_id: str
    run_dir: Path
    config: Mapping[str, Any]
    config_hash: str


class Register(Protocol):
    """The callback every ``register_*`` hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        description: str | None = None,
        **info: Any,
    ) -> None:
        """Register ``factory`` under ``name``.

        Args:
            name: the lowercase id users type (``dual``, ``smp-unet``). Letters, digits,
                ``-``, ``_`` and ``.`` only.
            factory: a callable that builds the component from keyword parameters. Its
                signature is shown to users as the component's parameters and defaults,
                so give every parameter a default where one makes sense.
            description: one line shown by ``benchbox plugins``; defaults to the first
                line of the factory's docstring.
            **info: kind-specific metadata, documented on each hook (e.g. ``task`` for
                losses and metrics). Values must be JSON-serialisable. A key that is not
                documented for the kind is an error naming the plugin (a typo such as
                ``headlin=1`` must not pass silently). Three keys apply to every kind:
                ``slow=True`` marks a component whose forward and backward pass on a
                tiny input takes more than about a second, so the contract tests run it
                only with ``pytest -m slow``; ``baseline=True`` marks a reference method
                (e.g. averaging) rather than a learned one; ``dims`` lists the
                dimensionalities a model or dataset supports, ``(2,)`` by default.
        """


@hookspec
def register_fusions(register: Register) -> None:
    """Register fusion models.

    ``factory(**params)`` returns a ``torch.nn.Module`` whose ``forward(a, b)`` takes two
    registered source images ``a`` and ``b``, each ``float32 (B, 1, H, W)`` in ``[0, 1]``,
    and returns one fused image ``float32 (B, 1, H, W)`` in ``[0, 1]`` of the same ``H``
    and ``W``. Models must accept any ``H`` and ``W`` divisible by 16.

    A model with no trainable parameters (a classic baseline such as averaging) is not
    trained: ``benchbox run`` skips fusion pre-training for it.

    ``info``: none required; ``slow`` and ``baseline`` as described in :class:`Register`.
    """


@hookspec
def register_segmenters(register: Register) -> None:
    """Register segmentation networks.

    ``factory(in_channels: int, num_classes: int, **params)`` returns a
    ``torch.nn.Module`` mapping ``float32 (B, in_channels, H, W)`` to logits
    ``(B, num_classes, H, W)``. ``num_classes`` counts the background (2 for a binary
    task). ``in_channels`` is 1 behind a fusion model and the number of modalities with
    ``--fusion none``. Models must accept any ``H`` and ``W`` divisible by 32.

    ``info``: none required.
    """


@hookspec(firstresult=True)
def open_inputs(
    dataset: str,
    root: str | None,
    modalities: tuple[str, str],
    image_size: int,
    training: Mapping[str, Any],
    split: str,
    resample: bool,
) -> Any:
    """Open new images for ``benchbox predict RUN --dataset NAME:PATH``, or return ``None``.

    Implement it for the datasets your plugin registers that need their own reading
    of new, unlabelled images (a folder of new pairs, an nnU-Net ``imagesTs``); return
    ``None`` for any other ``dataset``. The first non-``None`` answer is used. When no
    plugin answers, ``benchbox predict`` rebuilds the dataset ``NAME`` with the run's
    recorded parameters and ``root=PATH`` and predicts its ``test`` split (with
    ``--split all`` every split), so a dataset plugin needs nothing more to be
    predicted on new data laid out like its training data.

    Args:
        dataset: the dataset name (``NAME`` of ``--dataset NAME:PATH``).
        root: the ``PATH`` part, or ``None``.
        modalities: the run's sources ``a`` and ``b``, in order.
        image_size: the run's training image size.
        training: the run's recorded dataset parameters (``dataset.config()`` as
            written in the run's ``config.json``): its preprocessing, channels...
        split: ``"test"`` (the cases to predict) or ``"all"`` (every case found).
        resample: resample (3D) or resize (2D) a modality whose grid differs.

    Returns:
        A :class:`benchbox.data.BenchDataset` whose ``test`` split holds every case
        to predict (labels unused), or ``None``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register loss functions.

    ``factory(**params)`` returns a ``torch.nn.Module`` returning a scalar tensor that
    is finite for finite inputs and differentiable in its first argument.

    ``info["task"]`` is required and says what the loss compares:

    * ``"segmentation"``: ``forward(logits, target)`` with logits ``(B, K, H, W)`` and an
      ``int64`` target ``(B, H, W)``. ``K == 1`` means a sigmoid (binary) output,
      ``K >= 2`` a softmax over classes.
    * ``"fusion"``: ``forward(fused, a, b)``, three ``(B, 1, H, W)`` images in ``[0, 1]``.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    ``factory(root: str | None = None, **params)`` returns an object satisfying
    :class:`benchbox.data.BenchDataset`: named splits (``train``, ``val``, ``test``) of
    samples holding two sources ``a`` and ``b`` (``float32 (1, H, W)`` in ``[0, 1]``),
    optionally a ``mask`` (``int64 (H, W)``), a ``case_id`` and the pixel ``spacing`` in
    mm. ``root`` receives the path of ``--dataset NAME:PATH``.

    ``info``: none required.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register evaluation metrics.

    ``factory`` is the metric function itself, called once per case (per region for
    segmentation) by :mod:`benchbox.metrics.suite`, which ``benchbox run`` and
    ``benchbox evaluate`` both use. The runner computes every metric whose ``task``
    matches the run (fusion, segmentation, or both for a joint run).

    * ``task="fusion"``: ``factory(fused, a, b) -> float | dict[str, float]`` on three
      2D ``float64`` NumPy arrays ``(H, W)`` of one shape with values in ``[0, 1]``: the
      fused image and its two sources.
    * ``task="segmentation"``: ``factory(pred, ref, spacing, **options) -> float |
      dict[str, float]`` on two boolean NumPy masks of one shape, 2D ``(H, W)`` or 3D
      ``(D, H, W)``, and ``spacing``, a tuple of floats: the voxel size in mm per array
      axis, in the arrays' axis order. A label map is scored per region: ``pred`` and
      ``ref`` are the masks of one region (the union of its labels). ``options`` are
      passed only to a factory whose signature declares them; today ``tolerance``
      (the NSD tolerance in mm, ``--nsd-tolerance``).

    Columns: a ``float`` result of metric ``name`` is column ``name``; a ``dict`` result
    gives one column ``name_<key>`` per key (``ssim`` returns ``a``, ``b``, ``mean``,
    ``sum``: columns ``ssim_a`` ... ``ssim_sum``). Segmentation columns then get the
    region suffix: ``name_<region>`` or ``name_<key>_<region>`` (``hd95_lesion``).

    Results must be finite numbers for every input, empty masks included: the metric
    owns its empty-mask rule (benchbox's: both empty is a perfect score, one empty the
    worst; see ``docs/metrics.md``). Invalid input raises
    :class:`benchbox.errors.MetricInputError` naming the argument. A metric that raises
    anything else, or returns NaN or an infinite value, is the plugin's bug: a run
    leaves it out of every case with a warning naming it and completes;
    ``benchbox evaluate`` stops with one line naming it.

    ``info``:

    * ``task`` (required): ``"fusion"`` or ``"segmentation"``;
    * ``higher_is_better`` (required): ``True`` or ``False``, for tables and ranking;
    * ``unit`` (optional): e.g. ``"mm"``, ``"dB"``, ``"bits"``;
    * ``min_size`` (optional, fusion): the smallest image side the metric accepts; by
      default the runner leaves the metric out, with a warning, on smaller images;
    * ``headline`` (optional): an ``int``, the metric's place among the columns that
      ``benchbox leaderboard`` and the sweep's summary show by default (1 first);
      without it the metric is shown only when asked for (``-m NAME``);
    * ``headline_key`` (optional, dict results): the one key shown by default
      (``ssim``: ``mean``, the column ``ssim_mean``).
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register sweep executors: what runs the runs of ``benchbox sweep``.

    ``factory(**params)`` returns an object with an ``int`` attribute ``slots`` (runs
    that may run at once, for the live table's ETA) and a method
    ``run(jobs, events, stop)``: start every :class:`benchbox.sweep.executor.Job`, each
    in a process of its own that ends with the executor's
    (:func:`benchbox.sweep.executor.run_worker` does that for one job), at most once
    (never retried behind the driver's back: the job's ``run_id`` names its run
    folder), call ``events.started(job)`` and
    ``events.ended(job, outcome)`` for each, and return when all have ended; when the
    ``threading.Event`` ``stop`` is set, stop the running jobs with SIGINT and report
    them ``interrupted``. Parameters come from ``--executor-opt key=value``. Built-ins:
    ``local`` (``jobs``, ``threads``, ``start``) and ``ray`` (``address``, ``num_cpus``,
    ``cpus_per_run``, ``gpus_per_run``, ``connect_timeout``, ``start``).
    """


@hookspec
def register_trackers(register: Register) -> None:
    """Register experiment trackers (TensorBoard, MLflow, Weights & Biases, ...).

    ``factory(**params)`` returns a tracker: any object with methods named after the
    run-lifecycle hooks below (``run_started``, ``epoch_ended``, ``run_finished``), each
    decorated with :data:`benchbox.hookimpl`. A run enabled with ``--tracker NAME`` (or
    ``trackers = ["NAME"]`` in a config) builds the tracker before training and
    registers it as a plugin for that run only.

    The factory runs before training starts: a tracker whose library is missing raises
    :class:`benchbox.errors.ConfigError` there, naming the package or extra to install
    (``pip install "benchbox[mlflow]"``), so no run is wasted.

    ``info``: none required; ``extra`` (optional) names the pip extra that installs the
    tracker's library.
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register data augmentation transforms, applied to training batches only.

    ``factory(**params)`` returns a callable ``transform(batch, generator) -> batch``.
    ``batch`` is a dict on the training device holding the sources ``a`` and ``b``,
    each ``float32 (B, 1, H, W)`` in ``[0, 1]``, and, for labelled data, ``mask``,
    ``int64 (B, H, W)``; other keys pass through. ``generator`` is the
    ``torch.Generator`` (on the batch's device) that every random draw must use, so
    the same run seed gives the same augmentations. The transform returns a new dict
    with the same keys, shapes and dtypes: sources still in ``[0, 1]``, the mask
    holding only labels it held before. Draw parameters per sample, not per batch.

    ``info["family"]`` is required:

    * ``"geometric"``: moves pixels; the same draw applies to ``a``, ``b`` and ``mask``
      (nearest-neighbour for the mask, so labels are never blended);
    * ``"intensity"``: changes values only, drawn independently per source; the mask is
      returned unchanged.
    """


@hookspec
def register_distillers(register: Register) -> None:
    """Register distillers: losses that train a student run against a teacher run.

    ``benchbox run --teacher RUN_DIR --distill NAME`` restores the finished run
    ``RUN_DIR`` (frozen, in eval mode) and adds ``--distill-weight`` times the sum of the
    distillers' values to the loss of the run's main training stage.

    ``factory(**params)`` returns a ``torch.nn.Module`` whose ``forward(student,
    teacher)`` returns a scalar tensor, finite for finite inputs, ``0`` when the two
    outputs are identical. ``student`` and ``teacher`` are dicts holding, for the same
    batch of sources, ``"logits"`` (segmentation logits ``(B, K, H, W)``, unnormalised;
    ``K == 1`` is a sigmoid output) and/or ``"fused"`` (the fused image
    ``(B, 1, H, W)`` in ``[0, 1]``), whichever the pipelines produce. The loss must be
    differentiable in the student's tensors and must not propagate a gradient into the
    teacher's (detach them: the teacher is never trained). Parameters from
    ``--distill-opt NAME.KEY=VALUE``; a ``temperature`` and a ``weight`` are customary.

    ``info["task"]`` is required and says which output the distiller compares:
    ``"segmentation"`` (``logits``: both runs need a segmenter with the same classes) or
    ``"fusion"`` (``fused``: both need a fusion model, the student's trainable).
    """


@hookspec
def register_regions(register: Register) -> None:
    """Register region presets: named sets of regions scored in segmentation.

    ``factory()`` returns ``{region name: labels}``, a region being the union of its
    integer labels (``{"whole-tumour": (1, 2, 3, 4), "enhancing-tumour": (4,)}``).
    ``benchbox evaluate seg --region NAME`` scores a preset's regions, and its labels
    are then taken as every label the files may hold: another non-zero label is an
    error. Region names use letters, digits, ``.``, ``_`` and ``-``.

    ``info``: none required.
    """


# -- run lifecycle --------------------------------------------------------------------
# Observers (trackers, loggers, notifiers) hear about runs through these hooks. They are
# called through pluggy's hook caller for every registered plugin that implements them,
# in pluggy's order (``tryfirst``/``trylast``). An implementation that raises is reported
# once as a warning naming its plugin and is not called again during that run; the run
# itself and its records are never affected. Return values are ignored.


@hookspec
def run_started(run: RunInfo) -> None:
    """A run's folder exists and its config is written; training is about to start.

    ``run`` is a :class:`benchbox.hooks.lifecycle.RunInfo`: ``run_id``, ``run_dir`` (a
    :class:`pathlib.Path`), ``config`` (the resolved settings, JSON-serialisable) and
    ``config_hash``.
    """


@hookspec
def epoch_ended(
    run: RunInfo, stage: str, epoch: int, train_loss: float, val_metrics: dict[str, float]
) -> None:
    """One training epoch ended.

    Args:
        run: the run (see :func:`run_started`).
        stage: ``"fusion"`` (fusion pre-training or fusion-only training), ``"joint"``
            (fusion + segmenter) or ``"segmentation"`` (``--fusion none``).
        epoch: the epoch within the stage, counted from 1.
        train_loss: the stage loss averaged over the epoch's training images.
        val_metrics: the validation metrics of this epoch by column (``dice``,
            ``dice_lesion``, ``hd95_lesion``, ``loss``); empty when the epoch was not
            validated (pre-training, ``--val-every N``, no val split).
    """


@hookspec
def run_finished(
    run: RunInfo,
    status: str,
    summary: dict[str, float],
    record: dict[str, Any],
    files: dict[str, Path],
    error: str | None,
) -> None:
    """A run ended; called from a ``finally``, so failed and interrupted runs too.

    Args:
        run: the run (see :func:`run_started`).
        status: ``"completed"``, ``"failed"`` or ``"interrupted"``.
        summary: the test metrics (means, ``_std`` and counts, as on the leaderboard);
            empty unless completed.
        record: the contents of ``metrics.json`` (``selection``, ``curve``, ``stages``,
            ``throughput``, ...); empty unless completed.
        files: what the run wrote, by name (``config``, ``metrics``, ``per_case``,
            ``checkpoint``, ``examples``); a failed run lists those that exist.
        error: why the run failed or stopped; ``None`` when completed.
    """
