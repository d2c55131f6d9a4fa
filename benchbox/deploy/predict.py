"""``benchbox predict`` as a library call: apply a trained run to new images, write files.

The run's models are rebuilt from its folder (:mod:`benchbox.engine.restore`), the inputs are
opened with the run's preprocessing (:mod:`benchbox.data.inputs`) and predicted by
:func:`benchbox.engine.inference.predict_split`, the module ``benchbox run`` evaluates with, so a
prediction here equals the one evaluation scored. Written under ``out``:

* ``fused/<name>.png`` (2D pairs: 8-bit, at the input's size, coloured with the colour
  source's chroma when a source is colour) or ``fused/<case>.nii.gz`` (3D cases:
  float32 in [0, 1] on the scan's grid and geometry);
* ``segmentations/<name>.png`` (2D: 0/255 for a binary task, class indices otherwise)
  or ``segmentations/<case>.nii.gz`` (3D: the training dataset's label values, on the
  scan's grid, restored as evaluation restores them).

Everything is written into a temporary folder inside ``out`` and moved into place only
when every case succeeded: a failed or interrupted prediction leaves no file behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbox import errors
from benchbox.records.atomic import StagedFolder

__all__ = ["PredictReport", "Step", "open_inputs", "predict_run"]

Step = Callable[[str], None]


@dataclass
class PredictReport:
    """What :func:`predict_run` did."""

    run_id: str
    cases: int
    images: int
    seconds: float
    out: Path
    files: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _to_png(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _label_values(training: dict[str, Any], num_classes: int) -> list[int]:
    """File value of each class index: the training dataset's own label values (e.g.
    BraTS 0, 1, 2, 4), or 0/1 for a binary target."""
    labels = training.get("labels")
    if labels and not training.get("target") and len(labels) == num_classes:
        return sorted(int(v) for v in labels)
    return list(range(num_classes))


def _write_pair(case: Any, item: Any, tmp: Path, colour: str | None, binary: bool) -> list[Path]:
    from benchbox.data.color import merge_chroma

    written = []
    ext = item.files[0].suffix.lower()
    ext = ext if ext in (".png", ".tif", ".tiff", ".bmp") else ".png"
    if case.fused is not None:
        fused = item.fit.invert(case.fused[None].astype(np.float32), label=False)[0]
        chroma = item.chroma.get(colour) if colour else None
        if colour and chroma is None:  # a grey image of the colour modality: neutral
            chroma = np.full((2, *fused.shape), 0.5, dtype=np.float32)
        image = _to_png(fused if chroma is None else merge_chroma(fused, chroma))
        written.append(_write(tmp / "fused" / f"{item.name}{ext}", image))
    if case.labels is not None:
        labels = item.fit.invert(case.labels[None].astype(np.int64), label=True)[0]
        mask = (labels > 0).astype(np.uint8) * 255 if binary else labels.astype(np.uint8)
        written.append(_write(tmp / "segmentations" / f"{item.name}.png", mask))
    return written


def _write_sample(case: Any, tmp: Path, binary: bool) -> list[Path]:
    """A 2D sample of any dataset plugin, at the network's size (the dataset keeps no
    original size to map it back to)."""
    written = []
    if case.fused is not None:
        written.append(_write(tmp / "fused" / f"{case.case_id}.png", _to_png(case.fused)))
    if case.labels is not None:
        labels = case.labels
        mask = (labels > 0).astype(np.uint8) * 255 if binary else labels.astype(np.uint8)
        written.append(_write(tmp / "segmentations" / f"{case.case_id}.png", mask))
    return written


def _write(path: Path, array: np.ndarray, reference: Any = None) -> Path:
    from benchbox.data.io import write_image

    return write_image(array, path, reference=reference)


def _write_volume(case: Any, tmp: Path, label_values: list[int]) -> list[Path]:
    from benchbox.data.io import save_prediction

    volume = case.volume
    written = []
    if case.fused is not None:
        fused = volume.restore.image(case.fused) if volume.restore is not None else case.fused
        written.append(
            _write(tmp / "fused" / f"{case.case_id}.nii.gz", fused, reference=volume.reference)
        )
    if case.restored is not None:
        volume.extra["label_values"] = label_values
        path = tmp / "segmentations" / f"{case.case_id}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(save_prediction(volume, case.restored, path))
    return written


class _AllCases:
    """A dataset seen as its cases to predict: the ``test`` split is the chosen splits'
    samples (and volumes) together."""

    def __init__(self, dataset: Any, splits: tuple[str, ...]) -> None:
        self.dataset, self.splits_used = dataset, splits
        self.name, self.modalities = dataset.name, dataset.modalities

    @property
    def splits(self) -> tuple[str, ...]:
        return ("test",)

    def split(self, name: str) -> Any:
        import torch

        parts = [self.dataset.split(s) for s in self.splits_used]
        return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)

    def volumes(self, name: str) -> Any:
        found = [self.dataset.volumes(s) for s in self.splits_used]
        if any(v is None for v in found):
            return None
        return [v for vols in found for v in vols]

    def eval_regions(self) -> Any:
        return self.dataset.eval_regions()


def open_inputs(run: Any, spec: str, split: str = "test", resample: bool = False) -> Any:
    """The new images of ``--dataset NAME[:PATH]``, opened with the run's preprocessing.

    The plugin that registered dataset ``NAME`` is asked first (the ``open_inputs``
    hook); when none answers, the dataset is rebuilt with the run's recorded parameters
    (if it is the run's own dataset) and ``root=PATH``, and its ``test`` split (every
    split with ``split="all"``) is predicted.
    """
    from benchbox.engine.models import dataset_kwargs
    from benchbox.hooks.manager import get_registry

    if split not in ("test", "all"):
        raise errors.ConfigError(f"--split must be test or all, not {split!r}")
    name, _, path = spec.partition(":")
    registry = get_registry()
    entry = registry.get("dataset", name)
    try:
        opened = registry.plugin_manager.hook.open_inputs(
            dataset=name,
            root=path or None,
            modalities=run.modalities,
            image_size=run.image_size,
            training=run.dataset_config,
            split=split,
            resample=resample,
        )
    except errors.BenchboxError:
        raise
    except Exception as exc:
        raise errors.PluginBugError(
            f"a plugin's open_inputs hook failed for dataset {name!r}: "
            f"{errors.describe(exc)} (--debug shows the traceback)"
        ) from exc
    if opened is not None:
        return opened
    kwargs = dataset_kwargs(entry, run.config) if name == run.config.dataset_name else {}
    if path:
        if not entry.accepts("root"):
            raise errors.ConfigError(f"dataset {name!r} takes no path; use --dataset {name}")
        kwargs["root"] = path
    else:
        kwargs.pop("root", None)
    dataset = entry.build(**kwargs)
    if tuple(dataset.modalities) != tuple(run.modalities):
        raise errors.DataError(
            f"{spec}: its modalities are {' + '.join(dataset.modalities)}; the run fuses "
            f"{' + '.join(run.modalities)}"
        )
    return _AllCases(dataset, ("test",) if split == "test" else tuple(dataset.splits))


def predict_run(
    run_dir: str | Path,
    dataset: str,
    out: str | Path,
    *,
    split: str = "test",
    resample: bool = False,
    batch_size: int | None = None,
    device: str = "cpu",
    start: Callable[[int], None] | None = None,
    step: Step | None = None,
) -> PredictReport:
    """Predict new images with a trained run and write fused images and segmentations.

    Args:
        run_dir: ``runs/<run_id>``.
        dataset: ``NAME:PATH`` of a registered dataset: ``pairs:<dir>``, ``nifti:<dir>``,
            ``cases:<config.toml>``, or a plugin's (see :func:`open_inputs`).
        out: the output folder (``fused/``, ``segmentations/``).
        split: ``"test"`` or ``"all"`` (see :mod:`benchbox.data.inputs`).
        resample: resample a modality whose grid differs from the first one.
        batch_size: slices per forward pass (default: the run's evaluation batch size).
        device: where to run the models.
        start: called with the number of cases before the first is predicted.
        step: called with each case's name once it is written (progress).

    Raises:
        ConfigError, PluginError, DataError: one line naming the culprit; nothing is
            written then.
    """
    import torch

    from benchbox.data.inputs import PairInputs
    from benchbox.engine.device import resolve_amp, resolve_device
    from benchbox.engine.inference import Predictor, predict_split
    from benchbox.engine.postprocess import postprocessor
    from benchbox.engine.restore import load_run

    dev = resolve_device(device)
    run = load_run(run_dir, device=str(dev))
    inputs = open_inputs(run, dataset, split, resample)
    amp = resolve_amp(run.config.amp, dev)
    predictor = Predictor(run.fusion, run.segmenter, dev, amp, tta=run.config.tta)
    post = postprocessor(run.postprocess)
    pairs = isinstance(inputs, PairInputs)
    volumes = None if pairs else inputs.volumes("test")
    total = len(inputs.split("test")) if volumes is None else len(volumes)
    if start is not None:
        start(total)
    colour = inputs.colour if isinstance(inputs, PairInputs) else None
    binary = run.num_classes == 2
    label_values = _label_values(run.dataset_config, run.num_classes)
    out = Path(out)
    files: dict[str, list[Path]] = {}
    with StagedFolder(out, prefix=".predict-") as stage, torch.inference_mode():
        cases = predict_split(
            inputs,
            predictor,
            "test",
            batch_size or run.config.eval_batch_size,
            whole_cases=volumes is not None,
        )
        for case in cases:
            case.postprocess(post)  # as the run's test split was scored
            if pairs:
                _write_pair(case, inputs.item(case.case_id), stage.tmp, colour, binary)
            elif volumes is None:
                _write_sample(case, stage.tmp, binary)
            else:
                _write_volume(case, stage.tmp, label_values)
            if step is not None:
                step(case.case_id)
        for path in stage.commit():
            files.setdefault(path.parent.name, []).append(path)
    return PredictReport(
        run_id=run.path.name,
        cases=total,
        images=predictor.images,
        seconds=predictor.seconds,
        out=out,
        files=files,
    )
