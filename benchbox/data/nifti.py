"""The nnU-Net v2 raw dataset layout, so an nnU-Net user can point benchbox at a dataset::

    <root>/dataset.json
    <root>/imagesTr/<case>_0000.nii.gz   # channel 0, _0001 channel 1, ...
    <root>/labelsTr/<case>.nii.gz
    <root>/imagesTs/<case>_0000.nii.gz   # optional
    <root>/labelsTs/<case>.nii.gz        # optional (benchbox's own extension)

``dataset.json`` gives ``channel_names`` (``{"0": "CT", "1": "MRI"}``), ``labels``
(``{"background": 0, "tumour": 1}``, or region-based entries such as
``"whole_tumour": [1, 2, 3]``, which become scored regions) and ``file_ending``. The
nnU-Net v1 keys ``modality`` and ``labels`` (``{"0": "background"}``) are read too.

Test cases are ``imagesTs`` when ``labelsTs`` exists (nnU-Net's ``imagesTs`` alone is
unlabelled and is not used); otherwise a share of ``imagesTr`` cases, split by case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchbox.data.options import DEFAULTS, as_names
from benchbox.data.paths import slugify
from benchbox.data.spec import CaseFiles, LabelSpec, default_norm
from benchbox.data.volumes import VolumeDataset, open_volume_dataset, volume_options
from benchbox.errors import ConfigError, DataError

__all__ = ["channel_names", "label_spec", "open_nifti", "read_dataset_json"]

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def read_dataset_json(root: Path) -> dict[str, Any]:
    """Read ``dataset.json``; :class:`DataError` if missing or invalid."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(f"{root}: no dataset.json (not an nnU-Net raw dataset folder)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta


def channel_names(meta: dict[str, Any], path: Path) -> list[str]:
    """Channel names in channel order; duplicates get their index appended."""
    raw = meta.get("channel_names", meta.get("modality"))
    if not isinstance(raw, dict) or not raw:
        raise DataError(f'{path}: dataset.json needs channel_names, e.g. {{"0": "CT"}}')
    try:
        items = sorted((int(k), str(v)) for k, v in raw.items())
    except ValueError:
        raise DataError(f"{path}: channel_names keys must be channel numbers") from None
    if [i for i, _ in items] != list(range(len(items))):
        raise DataError(f"{path}: channel_names must number the channels 0, 1, 2, ...")
    names = [n for _, n in items]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def label_spec(meta: dict[str, Any], path: Path) -> LabelSpec:
    """Labels and regions from ``dataset.json`` (v2 name -> value(s), or v1 value -> name)."""
    raw = meta.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise DataError(f'{path}: dataset.json needs labels, e.g. {{"background": 0}}')
    values: dict[int, str] = {}
    regions: dict[str, tuple[int, ...]] = {}
    try:
        if all(str(k).lstrip("-").isdigit() for k in raw) and all(
            isinstance(v, str) for v in raw.values()
        ):
            values = {int(k): str(v) for k, v in raw.items()}  # nnU-Net v1
        else:
            for label, value in raw.items():
                if isinstance(value, list):
                    regions[str(label)] = tuple(int(v) for v in value)
                else:
                    values[int(value)] = str(label)
            for members in regions.values():
                for v in members:
                    values.setdefault(v, f"label-{v}")
    except (TypeError, ValueError):
        raise DataError(f"{path}: dataset.json labels must map names to integers") from None
    values.setdefault(0, "background")
    try:
        return LabelSpec(values, {k: v for k, v in regions.items() if v != (0,)})
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _collect(
    images: Path, labels: Path | None, ending: str, channels: list[str]
) -> list[CaseFiles]:
    files: dict[str, dict[int, Path]] = {}
    for path in sorted(images.iterdir()) if images.is_dir() else []:
        if path.name.startswith(".") or not path.name.endswith(ending):
            continue
        match = _CHANNEL.match(path.name[: -len(ending)])
        if match is None:
            raise DataError(f"{path}: image name must end in _XXXX{ending} (channel number)")
        files.setdefault(match["case"], {})[int(match["channel"])] = path
    if labels is not None and labels.is_dir():
        for path in sorted(labels.iterdir()):
            if path.name.endswith(ending) and not path.name.startswith("."):
                files.setdefault(path.name[: -len(ending)], {})
    cases = []
    for case, chans in sorted(files.items()):
        images_of = {}
        for idx, name in enumerate(channels):
            if idx not in chans:
                raise DataError(
                    f"case {case!r}: missing modality file {images / f'{case}_{idx:04d}{ending}'} "
                    f"({name})"
                )
            images_of[name] = chans[idx]
        extra = sorted(set(chans) - set(range(len(channels))))
        if extra:
            raise DataError(
                f"case {case!r}: channel {extra[0]} ({chans[extra[0]]}) is not in dataset.json"
            )
        label = None
        if labels is not None:
            label = labels / f"{case}{ending}"
            if not label.is_file():
                raise DataError(f"case {case!r}: missing label file {label}")
        cases.append(CaseFiles(case, images_of, label))
    return cases


def _pick_modalities(value: Any, channels: list[str], path: Path) -> tuple[str, str]:
    if value is None:
        if len(channels) < 2:
            raise DataError(
                f"{path}: {len(channels)} channel; fusion needs two (channel_names: {channels})"
            )
        return channels[0], channels[1]
    picked = []
    for item in as_names(value, "modalities"):
        if item in channels:
            picked.append(item)
        elif item.isdigit() and int(item) < len(channels):
            picked.append(channels[int(item)])
        else:
            raise ConfigError(
                f"modality {item!r} is not a channel of {path} (channels: {', '.join(channels)})"
            )
    if len(picked) != 2 or picked[0] == picked[1]:
        raise ConfigError(f"modalities={value!r} must name two different channels")
    return picked[0], picked[1]


def open_nifti(
    root: str | None = None,
    image_size: int = DEFAULTS["image_size"],
    seed: int = 0,
    resample: bool = DEFAULTS["resample"],
    modalities: str | None = None,
    target: str | None = DEFAULTS["target"],
    val_fraction: float = DEFAULTS["val_fraction"],
    test_fraction: float = DEFAULTS["test_fraction"],
    split_seed: int = DEFAULTS["split_seed"],
    folds: int = DEFAULTS["folds"],
    fold: int = DEFAULTS["fold"],
    slices_per_case: int = DEFAULTS["slices_per_case"],
    lesion_fraction: float | None = DEFAULTS["lesion_fraction"],
    ct_window: tuple[float, float] | str = DEFAULTS["ct_window"],
    percentiles: tuple[float, float] | str = DEFAULTS["percentiles"],
    crop: bool = DEFAULTS["crop"],
    crop_margin: int = DEFAULTS["crop_margin"],
    fit: str = DEFAULTS["fit"],
    geometry_tolerance: float = DEFAULTS["geometry_tolerance"],
    name: str | None = None,
    cache: bool = True,
) -> VolumeDataset:
    """An nnU-Net v2 raw dataset folder (``imagesTr``, ``labelsTr``, ``dataset.json``).

    Args:
        root: the dataset folder (``.../Dataset001_BrainTumour``).
        image_size: side of the square training slices.
        seed: the run seed; picks the training slices (not the split).
        resample: resample channels/labels whose grid differs from channel ``a``.
        modalities: the two fused channels by name or number, ``"FLAIR,T1c"`` or
            ``"0,2"`` (default: channels 0 and 1). CT channels get the HU window, the
            others percentile normalisation.
        target, val_fraction, test_fraction, split_seed, folds, fold, slices_per_case,
            lesion_fraction, ct_window, percentiles, crop, crop_margin, fit,
            geometry_tolerance: the shared dataset options, declared with their defaults
            in :data:`benchbox.data.options.OPTIONS` (no test share is taken when
            ``labelsTs`` gives the test cases).
        name: the leaderboard slug (default: the folder name, lowercased).
        cache: use the preprocessing cache (``BENCHBOX_CACHE``).
    """
    arguments = dict(locals())  # the options among them: volume_options()
    if root is None:
        raise ConfigError(
            "dataset 'nifti' needs a folder: --dataset nifti:<nnU-Net dataset folder>"
        )
    folder = Path(str(root)).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder")
    meta = read_dataset_json(folder)
    json_path = folder / "dataset.json"
    channels = channel_names(meta, json_path)
    spec = label_spec(meta, json_path)
    ending = str(meta.get("file_ending", ".nii.gz"))
    fused = _pick_modalities(modalities, channels, json_path)

    cases = _collect(folder / "imagesTr", folder / "labelsTr", ending, channels)
    fixed: dict[str, list[str]] = {}
    has_test = (folder / "labelsTs").is_dir()
    if has_test:
        test_cases = _collect(folder / "imagesTs", folder / "labelsTs", ending, channels)
        clash = {c.case_id for c in test_cases} & {c.case_id for c in cases}
        if clash:
            raise DataError(f"{folder}: case {sorted(clash)[0]!r} is in both imagesTr and imagesTs")
        cases += test_cases
        fixed["test"] = [c.case_id for c in test_cases]
    if not cases:
        raise DataError(f"{folder}: empty dataset, no {ending} image in imagesTr")
    options = volume_options({**arguments, "test_fraction": 0.0 if has_test else test_fraction})
    raw_names = meta.get("channel_names", meta.get("modality", {}))
    norms = {ch: default_norm(str(raw_names.get(str(i), ch))) for i, ch in enumerate(channels)}
    return open_volume_dataset(
        name=name or slugify(folder.name),
        layout="nnunet",
        root=folder,
        cases=cases,
        modalities=fused,
        labels=spec,
        norms=norms,
        options=options,
        seed=seed,
        cache=cache,
        fixed_splits=fixed,
        source={
            "channels": channels,
            "file_ending": ending,
            "test_from": "imagesTs+labelsTs" if has_test else "imagesTr (case split)",
        },
    )
