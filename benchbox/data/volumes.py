"""Datasets of whole cases (3D volumes, or 2D images as one-slice cases) read from disk.

The layout readers (:mod:`benchbox.data.nifti`, :mod:`benchbox.data.cases`) turn a
folder into a list of :class:`~benchbox.data.spec.CaseFiles`; :class:`VolumeDataset`
does the rest: preprocessing each case (:mod:`benchbox.data.pipeline`) through the slice
cache (:mod:`benchbox.data.cache`), the case-level split (:mod:`benchbox.data.splits`),
slice sampling, and the :class:`~benchbox.data.base.Volume` objects of the 3D
evaluation.

Every case is checked and preprocessed when the dataset is built, so a bad file stops
the run before training, with a :class:`~benchbox.errors.DataError` naming it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data import io
from benchbox.data.base import BenchDataset, Sample, Volume
from benchbox.data.cache import CacheEntry, SliceCache, cache_key, file_digest
from benchbox.data.options import DEFAULTS, resolve_options
from benchbox.data.pipeline import preprocess_case
from benchbox.data.preprocess import Fit, Orientation, Restorer, sample_slices
from benchbox.data.spec import CaseFiles, LabelSpec, Preprocessing, default_norm
from benchbox.data.splits import assign_splits
from benchbox.errors import ConfigError, DataError

__all__ = [
    "VOLUME_OPTIONS",
    "LazyVolumes",
    "VolumeDataset",
    "VolumeSamples",
    "open_volume_dataset",
    "volume_options",
]


@dataclass
class _Case:
    case_id: str
    entry: CacheEntry
    cache_key: str
    files: dict[str, str]

    @property
    def meta(self) -> dict[str, Any]:
        return self.entry.meta


class VolumeSamples(Sequence[Sample]):
    """A map-style dataset over chosen slices of cached cases; tensors made on access."""

    def __init__(
        self,
        cases: Sequence[_Case],
        index: Sequence[tuple[int, int]],
        lut: np.ndarray | None,
        is_2d: bool,
    ) -> None:
        self.cases, self.slices, self.lut, self.is_2d = list(cases), list(index), lut, is_2d

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        import torch

        ci, z = self.slices[i]
        case = self.cases[ci]
        meta = case.meta
        spacing = meta["spacing"]
        z0 = meta["box"][0][0]
        sample: Sample = {
            "a": torch.from_numpy(np.array(case.entry.array("a")[z], dtype=np.float32)[None]),
            "b": torch.from_numpy(np.array(case.entry.array("b")[z], dtype=np.float32)[None]),
            "case_id": case.case_id if self.is_2d else f"{case.case_id}_z{z0 + z:03d}",
            "case": case.case_id,
            "slice": int(z0 + z),
            "spacing": torch.tensor(spacing[1:], dtype=torch.float64),
        }
        if self.lut is not None:
            mask = np.asarray(case.entry.array("mask")[z])
            sample["mask"] = torch.from_numpy(self.lut[mask].astype(np.int64))
        return sample


class LazyVolumes(Sequence[Volume]):
    """The :class:`Volume` of each case of a split, loaded from the cache on access."""

    def __init__(self, dataset: VolumeDataset, cases: Sequence[_Case]) -> None:
        self.dataset, self.cases = dataset, list(cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> Volume:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("LazyVolumes does not support slicing; iterate instead")
        return self.dataset._volume(self.cases[i])


class VolumeDataset(BenchDataset):
    """Whole cases preprocessed into axial slices; see the module docstring.

    Build it through a layout reader (``nifti``, ``cases`` plugins) rather than directly.
    """

    def __init__(
        self,
        *,
        name: str,
        layout: str,
        root: Path,
        cases: Sequence[CaseFiles],
        modalities: tuple[str, str],
        labels: LabelSpec | None,
        params: Preprocessing,
        val_fraction: float = DEFAULTS["val_fraction"],
        test_fraction: float = DEFAULTS["test_fraction"],
        split_seed: int = DEFAULTS["split_seed"],
        fixed_splits: Mapping[str, Sequence[str]] | None = None,
        folds: int = DEFAULTS["folds"],
        fold: int = DEFAULTS["fold"],
        seed: int = 0,
        slices_per_case: int = 0,
        lesion_fraction: float | None = None,
        target: str | None = None,
        cache: SliceCache | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        if not cases:
            raise DataError(f"{root}: empty dataset, no case found")
        self.name = name
        self.layout, self.root = layout, Path(root)
        self.modalities = modalities
        self.params = params
        self.seed, self.split_seed = seed, split_seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.folds, self.fold = folds, fold
        self.slices_per_case, self.lesion_fraction = slices_per_case, lesion_fraction
        self.source = dict(source or {})
        self.cache = cache or SliceCache()
        self._label_spec = labels
        self._setup_labels(labels, target)

        self._cases = self._load_all(cases, modalities, labels, params)
        ndims = {c.meta["ndim"] for c in self._cases}
        if len(ndims) > 1:
            two = next(c for c in self._cases if c.meta["ndim"] == 2)
            three = next(c for c in self._cases if c.meta["ndim"] == 3)
            raise DataError(
                f"{root}: 2D and 3D files mixed: case {two.case_id!r} is 2D, "
                f"case {three.case_id!r} is 3D"
            )
        self.is_2d = ndims == {2}
        self.present_values = sorted(
            {v for c in self._cases for v in c.meta["label_values_present"]}
        )
        self.split_cases = assign_splits(
            [c.case_id for c in self._cases],
            val_fraction,
            test_fraction,
            split_seed,
            fixed_splits,
            folds=folds,
            fold=fold,
        )
        self._by_id = {c.case_id: c for c in self._cases}
        self._samples: dict[str, VolumeSamples] = {}

    # -- labels ---------------------------------------------------------------------
    def _setup_labels(self, spec: LabelSpec | None, target: str | None) -> None:
        self.target = target
        if spec is None:
            if target is not None:
                raise ConfigError(f"dataset {self.name!r} has no labels; target={target!r} is void")
            self.labels, self.regions, self._lut, self._values = None, {}, None, None
            return
        values = spec.sorted_values
        index = {v: i for i, v in enumerate(values)}
        if target is None:
            self.labels = {i: spec.values[v] for i, v in enumerate(values)}
            self.regions = {r: tuple(index[v] for v in m) for r, m in spec.regions.items()}
            self._lut = np.arange(len(values), dtype=np.int64)
            self._values = values
            return
        if target in spec.regions:
            members = spec.regions[target]
        else:
            by_name = {n: v for v, n in spec.values.items()}
            if target not in by_name or by_name[target] == 0:
                choices = [*spec.regions, *(n for v, n in spec.values.items() if v != 0)]
                raise ConfigError(
                    f"target {target!r} is neither a region nor a label of {self.name!r} "
                    f"(choose from {', '.join(choices)})"
                )
            members = (by_name[target],)
        lut = np.zeros(len(values), dtype=np.int64)
        lut[[index[v] for v in members]] = 1
        self.labels = {0: "background", 1: target}
        self.regions = {target: (1,)}
        self._lut = lut
        self._values = [0, 1]

    def has_foreground(self, split: str) -> bool | None:
        """Whether a case of ``split`` holds a foreground label (of ``target``, if set)."""
        self.check_split(split)
        if self._lut is None or self._label_spec is None:
            return None
        index = {v: i for i, v in enumerate(self._label_spec.sorted_values)}
        for case_id in self.split_cases[split]:
            present = self._by_id[case_id].meta["label_values_present"]
            if any(v in index and self._lut[index[v]] > 0 for v in present):
                return True
        return False

    # -- building -------------------------------------------------------------------
    def _load_all(
        self,
        cases: Sequence[CaseFiles],
        modalities: tuple[str, str],
        labels: LabelSpec | None,
        params: Preprocessing,
    ) -> list[_Case]:
        # Reading and decompressing release the GIL: threads overlap the cases' I/O.
        workers = min(len(cases), os.cpu_count() or 1, 4)
        if workers < 2:
            return [self._load_case(c, modalities, labels, params) for c in cases]
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(self._load_case, c, modalities, labels, params) for c in cases]
            try:
                return [f.result() for f in futures]
            finally:
                for f in futures:
                    f.cancel()

    def _load_case(
        self,
        case: CaseFiles,
        modalities: tuple[str, str],
        labels: LabelSpec | None,
        params: Preprocessing,
    ) -> _Case:
        for mod in modalities:
            if mod not in case.images:
                raise DataError(f"case {case.case_id!r}: no {mod} image")
        files: dict[str, Path] = {f"image:{m}": case.images[m] for m in modalities}
        if case.label is not None and labels is not None:
            files["label"] = case.label
        if case.foreground is not None:
            files["foreground"] = case.foreground
        for role, path in files.items():
            if not path.exists():
                raise DataError(f"case {case.case_id!r}: missing {role.split(':')[-1]} file {path}")
        digests = {role: file_digest(path) for role, path in files.items()}
        norms = {m: params.norms.get(m, default_norm(m)) for m in modalities}
        key = cache_key(
            kind="case",
            digests=digests,
            modalities=list(modalities),
            labels={str(k): v for k, v in labels.values.items()} if labels else None,
            params={**params.as_dict(), "norms": norms},
        )
        entry = self.cache.get(key)
        if entry is None:
            arrays, meta = preprocess_case(case, modalities, labels, params)
            entry = self.cache.put(key, arrays, meta, compress=("source_mask",))
        return _Case(case.case_id, entry, key, {r: str(p) for r, p in files.items()})

    # -- the contract ---------------------------------------------------------------
    def split(self, name: str) -> Sequence[Sample]:
        self.check_split(name)
        if name not in self._samples:
            cases = [self._by_id[c] for c in self.split_cases[name]]
            if not cases:
                raise DataError(
                    f"dataset {self.name!r}: split {name!r} holds no case "
                    f"(splits: {self._split_counts()}); adjust val_fraction/test_fraction"
                )
            index: list[tuple[int, int]] = []
            for ci, case in enumerate(cases):
                depth = int(case.entry.array("a").shape[0])
                if name == "train" and not self.is_2d:
                    index += [(ci, int(z)) for z in self._train_slices(case, depth)]
                else:
                    index += [(ci, z) for z in range(depth)]
            if not index:
                raise DataError(f"dataset {self.name!r}: split {name!r} holds no slice")
            self._samples[name] = VolumeSamples(cases, index, self._lut, self.is_2d)
        return self._samples[name]

    def _train_slices(self, case: _Case, depth: int) -> np.ndarray:
        if self.slices_per_case == 0 and self.lesion_fraction is None:
            return np.arange(depth)
        if self._lut is not None:
            mask = np.asarray(case.entry.array("mask"))
            lesion = (self._lut[mask] > 0).reshape(depth, -1).any(axis=1)
        else:
            lesion = np.zeros(depth, dtype=bool)
        rng = np.random.default_rng([self.seed, zlib.crc32(case.case_id.encode())])
        return sample_slices(lesion, rng, self.slices_per_case, self.lesion_fraction)

    def volumes(self, split: str) -> Sequence[Volume] | None:
        """The whole cases of ``split`` (``None`` for a dataset of 2D images)."""
        self.check_split(split)
        if self.is_2d:
            return None
        return LazyVolumes(self, [self._by_id[c] for c in self.split_cases[split]])

    def _volume(self, case: _Case) -> Volume:
        meta = case.meta
        fit = meta["fit"]
        restorer = Restorer(
            source_shape=tuple(meta["reference"]["shape"]),
            orientation=Orientation(
                tuple(meta["orientation"]["perm"]), tuple(meta["orientation"]["flip"])
            ),
            box=tuple((int(a), int(b)) for a, b in meta["box"]),
            fit=Fit(
                tuple(fit["source"]), tuple(fit["resized"]), int(fit["size"]), tuple(fit["offset"])
            ),
        )
        reference = io.Geometry.from_dict(meta["reference"])
        mask = source_mask = None
        if self._lut is not None:
            mask = self._lut[np.asarray(case.entry.array("mask"))]
            source_mask = self._lut[case.entry.array("source_mask")]
        return Volume(
            case_id=case.case_id,
            a=np.array(case.entry.array("a"), dtype=np.float32),
            b=np.array(case.entry.array("b"), dtype=np.float32),
            mask=mask,
            spacing=tuple(float(s) for s in meta["spacing"]),  # type: ignore[arg-type]
            restore=restorer,
            reference=reference,
            source_mask=source_mask,
            extra={
                "label_values": self._values,
                "source_spacing": reference.spacing,
                "files": case.files,
                "crop_box": meta["box"],
            },
        )

    # -- description ----------------------------------------------------------------
    def _split_counts(self) -> str:
        return ", ".join(f"{k} {len(v)}" for k, v in self.split_cases.items())

    def config(self) -> dict[str, Any]:
        spec = self._label_spec
        return {
            "name": self.name,
            "layout": self.layout,
            "root": str(self.root),
            **self.source,
            "modalities": list(self.modalities),
            "dimension": "2d" if self.is_2d else "3d",
            "preprocessing": {
                **self.params.as_dict(),
                "norms": {m: self.params.norms.get(m, default_norm(m)) for m in self.modalities},
            },
            "labels": {str(k): v for k, v in spec.values.items()} if spec else None,
            "label_values_present": self.present_values,
            "target": self.target,
            "regions": {k: list(v) for k, v in self.eval_regions().items()},
            "splits": self.split_cases,
            "split_seed": self.split_seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            **({"folds": self.folds, "fold": self.fold} if self.folds else {}),
            "seed": self.seed,
            "slices_per_case": self.slices_per_case,
            "lesion_fraction": self.lesion_fraction,
            "cache": str(self.cache.root) if self.cache.enabled else None,
        }


#: The dataset options every volume reader (``nifti``, ``cases``) takes as arguments;
#: their defaults and parsers are declared in :data:`benchbox.data.options.OPTIONS`.
VOLUME_OPTIONS: tuple[str, ...] = (
    "image_size",
    "resample",
    "target",
    "val_fraction",
    "test_fraction",
    "split_seed",
    "folds",
    "fold",
    "slices_per_case",
    "lesion_fraction",
    "ct_window",
    "percentiles",
    "crop",
    "crop_margin",
    "fit",
    "geometry_tolerance",
)


def volume_options(
    arguments: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The :data:`VOLUME_OPTIONS` of a reader's call, parsed over ``defaults`` (a config
    file's values; :func:`benchbox.data.options.resolve_options`).

    Args:
        arguments: the reader's arguments (``dict(locals())`` on entry); ``None`` means
            "not given".
        defaults: the reader's own defaults, over the declared ones.
    """
    return resolve_options({k: arguments[k] for k in VOLUME_OPTIONS}, defaults)


def open_volume_dataset(
    *,
    name: str,
    layout: str,
    root: Path,
    cases: Sequence[CaseFiles],
    modalities: tuple[str, str],
    labels: LabelSpec | None,
    norms: Mapping[str, str],
    options: Mapping[str, Any],
    seed: int,
    cache: bool,
    fixed_splits: Mapping[str, Sequence[str]] | None = None,
    source: Mapping[str, Any] | None = None,
) -> VolumeDataset:
    """Build a :class:`VolumeDataset` from resolved options (:func:`resolve_options`)."""
    from benchbox.data import options as opt

    params = Preprocessing(
        image_size=options["image_size"],
        fit=options["fit"],
        norms=dict(norms),
        ct_window=options["ct_window"],
        percentiles=options["percentiles"],
        crop=options["crop"],
        crop_margin=options["crop_margin"],
        resample=options["resample"],
        geometry_tolerance=options["geometry_tolerance"],
    )
    return VolumeDataset(
        name=name,
        layout=layout,
        root=root,
        cases=cases,
        modalities=modalities,
        labels=labels,
        params=params,
        val_fraction=options["val_fraction"],
        test_fraction=options["test_fraction"],
        split_seed=options["split_seed"],
        folds=options["folds"],
        fold=options["fold"],
        fixed_splits=fixed_splits,
        seed=opt.as_int(seed or 0, "seed"),
        slices_per_case=options["slices_per_case"],
        lesion_fraction=options["lesion_fraction"],
        target=options["target"],
        cache=SliceCache(enabled=opt.as_bool(cache, "cache")),
        source=source,
    )
