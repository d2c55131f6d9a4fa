"""New images opened the way a trained run saw its training data, for ``benchbox predict``.

An input dataset holds every case to predict in its ``test`` split. Labels are never
needed (and never read), and the preprocessing is the run's recorded one:

* ``pairs:<dir>``: registered 2D pairs in ``<dir>/<MODALITY>/<name>.<ext>`` (a folder
  of new pairs), or a pairs dataset with split folders (``<dir>/test/<MODALITY>/``;
  ``--split all`` takes every split folder). Pixels are scaled as in training
  (8/16-bit by their range, colour split into luma and chroma) and resized to the
  run's image size; :attr:`PairInput.fit` maps predictions back to the input's size.
* ``nifti:<dir>``: an nnU-Net dataset folder (``imagesTs``, or with ``--split all``
  ``imagesTr`` too) or a folder of ``<case>_XXXX.nii.gz`` files itself (``imagesTs``);
  channels are matched to the run's modalities by the recorded ``channel_names``.
* ``cases:<config.toml>``: one folder per case (:mod:`benchbox.data.cases`).

3D inputs go through the training pipeline (:mod:`benchbox.data.pipeline`): the same
normalisation, crop, fit and geometry checks (``resample`` to resample a modality
whose grid differs), and the same :class:`~benchbox.data.preprocess.Restorer` back to
the scan's grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data.base import BenchDataset, Sample
from benchbox.data.preprocess import Fit
from benchbox.data.volumes import VolumeDataset
from benchbox.errors import ConfigError, DataError

__all__ = ["SPLITS", "CaseInputs", "PairInput", "PairInputs", "open_inputs"]

SPLITS = ("test", "all")


@dataclass
class PairInput:
    """One 2D pair to predict: its files, its size and how it was fitted."""

    name: str
    files: tuple[Path, Path]
    shape: tuple[int, int]
    fit: Fit
    spacing: tuple[float, float]
    chroma: dict[str, np.ndarray] = field(default_factory=dict)


class PairInputs(BenchDataset):
    """Registered 2D pairs to predict, preprocessed as :mod:`benchbox.data.pairs` does."""

    def __init__(
        self,
        folders: Sequence[Path],
        modalities: tuple[str, str],
        image_size: int,
        resample: bool,
    ) -> None:
        from benchbox.data.pairs import _images

        self.name, self.modalities = "inputs", modalities
        self.items: list[PairInput] = []
        self.samples: list[Sample] = []
        seen: dict[str, Path] = {}
        for folder in folders:
            dirs = [folder / m for m in modalities]
            present = [d for d in dirs if d.is_dir()]
            if len(present) < 2:
                found = sorted(p.name for p in folder.iterdir() if p.is_dir()) or ["none"]
                raise DataError(
                    f"{folder}: the run fuses {modalities[0]} and {modalities[1]}, so it needs "
                    f"the folders {modalities[0]}/ and {modalities[1]}/ (found: {', '.join(found)})"
                )
            files = [_images(d) for d in dirs]
            names = sorted(set(files[0]) | set(files[1]))
            if not names:
                raise DataError(f"{folder}: no image in {dirs[0].name}/ or {dirs[1].name}/")
            for stem in names:
                for k in (0, 1):
                    if stem not in files[k]:
                        other = files[1 - k][stem]
                        raise DataError(
                            f"{other}: missing modality file {dirs[k] / stem}.* "
                            f"({modalities[k]}); the run needs both modalities"
                        )
                if stem in seen:
                    raise DataError(f"pair {stem!r} is in both {seen[stem]} and {folder}")
                seen[stem] = folder
                self._add(stem, (files[0][stem], files[1][stem]), image_size, resample)

    def _add(self, stem: str, paths: tuple[Path, Path], size: int, resample: bool) -> None:
        import torch

        from benchbox.data.pairs import _read_2d, _split_colour
        from benchbox.data.preprocess import resize_stack

        img_a, img_b = _read_2d(paths[0]), _read_2d(paths[1])
        shape = img_a.array.shape[:2]
        if img_b.array.shape[:2] != shape and not resample:
            raise DataError(
                f"{img_b.path}: size {img_b.array.shape[:2]} does not match {img_a.path} "
                f"{shape} (pass --resample to resize it)"
            )
        fit = Fit.plan(shape[0], shape[1], size, "resize")
        sample: Sample = {"case_id": stem}
        chromas: dict[str, np.ndarray] = {}
        for key, img in (("a", img_a), ("b", img_b)):
            luma, chroma = _split_colour(img)
            if luma.shape != shape:
                luma = resize_stack(luma[None], shape)[0]
                chroma = None if chroma is None else resize_stack(chroma, shape)
            sample[key] = torch.from_numpy(fit.apply(luma[None].astype(np.float32)))
            if chroma is not None:  # kept at the input's size, to colour the output
                chromas[key] = chroma.astype(np.float32)
        sy, sx = fit.scale
        spacing = (img_a.spacing[0] / sy, img_a.spacing[1] / sx)
        sample["spacing"] = torch.tensor(spacing, dtype=torch.float64)
        self.items.append(PairInput(stem, paths, shape, fit, spacing, chromas))
        self.samples.append(sample)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("test",)

    def split(self, name: str) -> Sequence[Sample]:
        self.check_split(name)
        return self.samples

    def item(self, case_id: str) -> PairInput:
        return next(i for i in self.items if i.name == case_id)

    @property
    def colour(self) -> str | None:
        """The first source that is colour in any pair (its chroma colours the output)."""
        return next((k for k in ("a", "b") if any(k in i.chroma for i in self.items)), None)


class CaseInputs(VolumeDataset):
    """3D cases to predict. Built with no validation or test share, so every case is
    in the parent's ``train`` split; it is served as the ``test`` split here."""

    def split(self, name: str) -> Sequence[Sample]:
        return super().split("train" if name == "test" else name)

    def volumes(self, split: str) -> Any:
        return super().volumes("train" if split == "test" else split)


def _pair_folders(root: Path, split: str) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    splits = [root / s for s in ("train", "val", "test") if (root / s).is_dir()]
    if not splits:
        return [root]  # a folder of new pairs: <root>/<MODALITY>/
    if split == "all":
        return splits
    if not (root / "test").is_dir():
        raise DataError(f"{root}: no test/ folder (use --split all for every split folder)")
    return [root / "test"]


def _nifti_cases(root: Path, split: str, modalities: tuple[str, str], record: Mapping[str, Any]):
    from benchbox.data.nifti import _collect, channel_names, read_dataset_json

    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    if (root / "dataset.json").is_file():
        meta = read_dataset_json(root)
        channels = channel_names(meta, root / "dataset.json")
        ending = str(meta.get("file_ending", ".nii.gz"))
        folders = [root / "imagesTs"] if split == "test" else [root / "imagesTr", root / "imagesTs"]
        folders = [f for f in folders if f.is_dir()]
        if not folders:
            raise DataError(f"{root}: no imagesTs folder (use --split all to predict imagesTr)")
    else:
        channels = list(record.get("channels") or modalities)
        ending = str(record.get("file_ending", ".nii.gz"))
        folders = [root]
    missing = [m for m in modalities if m not in channels]
    if missing:
        raise DataError(
            f"{root}: the run fuses {' and '.join(modalities)}; channels here: "
            f"{', '.join(channels)}"
        )
    cases = []
    for folder in folders:
        cases += _collect(folder, None, ending, channels)
    if not cases:
        raise DataError(f"{root}: no <case>_XXXX{ending} image")
    return cases


def _case_folders(path: Path, training: Mapping[str, Any]) -> list[Any]:
    """Case folders: ``path`` is a data folder (its own config, else the run's) or a
    config file whose ``root`` names the data folder. Labels are not read."""
    from benchbox.data.cases import (
        CONFIG_NAMES,
        discover_cases,
        expand_path,
        find_config,
        load_config,
    )

    if path.is_dir():
        inside = [path / n for n in CONFIG_NAMES if (path / n).is_file()]
        recorded = training.get("config")
        if not inside and not recorded:
            raise DataError(f"{path}: no case-folder config ({CONFIG_NAMES[0]})")
        config = load_config(inside[0] if inside else find_config(str(recorded)))
        root = path
    else:
        cfg_path = find_config(str(path))
        config = load_config(cfg_path)
        if not config.get("root"):
            raise ConfigError(f"{cfg_path}: no 'root' key; use --dataset cases:<data folder>")
        root = expand_path(str(config["root"]), cfg_path.parent)
    return discover_cases(root, {**config, "label": None})


def open_inputs(
    kind: str,
    path: str | Path,
    modalities: tuple[str, str],
    image_size: int,
    training: Mapping[str, Any],
    split: str = "test",
    resample: bool = False,
) -> BenchDataset:
    """Open new images for prediction with a run's preprocessing.

    Args:
        kind: the reader: ``pairs`` (a folder of pairs), ``nifti`` (an nnU-Net folder)
            or ``cases`` (case folders, or their ``config.toml``).
        path: the folder or config.
        modalities: the run's sources ``a`` and ``b``.
        image_size: the run's image size.
        training: the run's recorded ``dataset_config`` (preprocessing, channels).
        split: ``"test"`` or ``"all"`` (see the module docstring).
        resample: resample (3D) or resize (2D) a modality whose grid differs.

    Raises:
        ConfigError: a bad spec or split; DataError: missing folders or files, a
            missing modality, or geometry that differs without ``resample``.
    """
    from benchbox.data.spec import Preprocessing

    if split not in SPLITS:
        raise ConfigError(f"--split must be test or all, not {split!r}")
    if kind not in ("pairs", "nifti", "cases"):
        raise ConfigError(f"no input reader {kind!r} (pairs, nifti or cases)")
    spec = f"{kind}:{path}"
    path = Path(path).expanduser()
    recorded = dict(training.get("preprocessing") or {})
    if kind == "pairs":
        if recorded:
            raise ConfigError(
                f"the run was trained on 3D cases ({training.get('layout')}); predict it on "
                f"nifti:<dir> or cases:<config.toml>, not {spec!r}"
            )
        return PairInputs(_pair_folders(path, split), modalities, image_size, resample)
    if not recorded:
        raise ConfigError(
            f"the run was trained on 2D pairs or synthetic slices, not 3D cases; "
            f"predict it on pairs:<dir> (got {spec!r})"
        )
    recorded["resample"] = resample or bool(recorded.get("resample"))
    params = Preprocessing(**{**recorded, "image_size": image_size})
    cases = _nifti_cases(path, split, modalities, training) if kind == "nifti" else []
    if kind == "cases":
        cases = _case_folders(path, training)
    return CaseInputs(
        name="inputs",
        layout=kind,
        root=path,
        cases=cases,
        modalities=modalities,
        labels=None,
        params=params,
        val_fraction=0.0,
        test_fraction=0.0,
    )
