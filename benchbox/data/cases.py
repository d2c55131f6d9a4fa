"""Datasets of whole cases (3D volumes, or 2D images as one-slice cases) read from disk.

The layout readers (:mod:`benchbox.data.nnunet`, :mod:`benchbox.data.casefolders`) turn
a folder into a list of :class:`CaseFiles`; :class:`VolumeDataset` does the rest:
preprocessing each case (:mod:`benchbox.data.preprocess`) through the slice cache
(:mod:`benchbox.data.cache`), the case-level split, slice sampling, and the
:class:`~benchbox.data.base.Volume` objects of the 3D evaluation.

Every case is checked and preprocessed when the dataset is built, so a bad file stops
the run before training, with a :class:`~benchbox.errors.DataError` naming it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data import io
from benchbox.data.base import BenchDataset, Sample, Volume
from benchbox.data.cache import CacheEntry, SliceCache, cache_key, file_digest
from benchbox.data.preprocess import (
    Fit,
    Orientation,
    Restorer,
    bounding_box,
    ct_window,
    percentile_normalise,
    resample_like,
    sample_slices,
)
from benchbox.errors import ConfigError, DataError

NORMS = ("ct", "mri", "none")


@dataclass
class CaseFiles:
    """The files of one case.

    Attributes:
        case_id: the case's name, unique in the dataset.
        images: modality name -> image file or DICOM series folder (every modality the
            layout declares; only the two fused ones are read).
        label: the label file, or ``None`` for an unlabelled case.
        foreground: an optional mask file (e.g. a brain mask) for normalisation and crop.
    """

    case_id: str
    images: dict[str, Path]
    label: Path | None = None
    foreground: Path | None = None


@dataclass
class Preprocessing:
    """The parameters that change the preprocessed arrays (part of the cache key).

    Attributes:
        image_size: the side of the square training slices.
        fit: ``"resize"`` scales the crop's longer side to ``image_size``; ``"pad"``
            only pads (and scales down a crop that does not fit).
        norms: modality -> ``"ct"`` (HU window), ``"mri"`` (percentiles) or ``"none"``
            (values already in ``[0, 1]``, clipped).
        ct_window: the HU window mapped to ``[0, 1]``.
        percentiles: the MRI percentiles mapped to 0 and 1, within the foreground.
        crop: crop to the foreground's bounding box (in 3D) before fitting.
        crop_margin: voxels kept around the foreground.
        resample: resample a modality, label or foreground mask whose grid differs from
            the reference modality (``a``) onto it, instead of failing.
        geometry_tolerance: see :func:`benchbox.data.io.compare_geometry`.
    """

    image_size: int = 128
    fit: str = "resize"
    norms: dict[str, str] = field(default_factory=dict)
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    crop: bool = True
    crop_margin: int = 2
    resample: bool = False
    geometry_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ConfigError(f"image_size must be an integer >= 16, got {self.image_size!r}")
        if self.fit not in ("resize", "pad"):
            raise ConfigError(f"fit must be 'resize' or 'pad', not {self.fit!r}")
        for mod, norm in self.norms.items():
            if norm not in NORMS:
                raise ConfigError(f"normalisation of {mod} must be one of {NORMS}, not {norm!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_norm(modality: str) -> str:
    """``"ct"`` for a modality named CT (any case), else ``"mri"``."""
    return "ct" if modality.strip().upper() in ("CT", "CECT", "NCCT") else "mri"


@dataclass(frozen=True)
class LabelSpec:
    """The label values of a dataset and the regions to score.

    Attributes:
        values: label value in the files -> name; must hold 0 (background).
        regions: region name -> the label values it unites.
    """

    values: Mapping[int, str]
    regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if 0 not in self.values:
            raise ConfigError("labels must include 0, the background")
        if min(self.values) < 0 or max(self.values) > 65535:
            raise ConfigError("label values must be within 0..65535")
        for region, members in self.regions.items():
            unknown = sorted(set(members) - set(self.values))
            if unknown:
                raise ConfigError(f"region {region!r} names undeclared labels {unknown}")

    @property
    def sorted_values(self) -> list[int]:
        return sorted(self.values)


# -- preprocessing of one case --------------------------------------------------------
def _as_scalar_volume(img: Any, path: Path) -> Any:
    """A greyscale ``SimpleITK.Image``; colour images become their luma (BT.601)."""
    import SimpleITK as sitk

    if img.GetDimension() not in (2, 3):
        raise DataError(f"{path}: a {img.GetDimension()}D image; expected a 2D or 3D image")
    n = img.GetNumberOfComponentsPerPixel()
    if n == 1:
        return img
    if n not in (3, 4):
        raise DataError(f"{path}: {n} values per pixel; expected greyscale or RGB")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    luma = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    out = sitk.GetImageFromArray(luma)
    out.CopyInformation(img)
    return out


def _label_indices(array: np.ndarray, path: Path, spec: LabelSpec) -> tuple[np.ndarray, list[int]]:
    """Label values -> class indices (``uint8``), checking that every value is declared."""
    if array.dtype.kind == "f" and (
        not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array))
    ):
        raise DataError(f"{path}: label file holds non-integer values")
    present = np.unique(array).astype(np.int64)
    unexpected = sorted(set(present.tolist()) - set(spec.values))
    if unexpected:
        shown = ", ".join(str(v) for v in unexpected[:8]) + (", ..." if len(unexpected) > 8 else "")
        expected = ", ".join(str(v) for v in spec.sorted_values)
        raise DataError(f"{path}: unexpected label values {shown} (expected {expected})")
    values = spec.sorted_values
    if len(values) > 255:
        raise DataError(f"{path}: more than 255 label values are not supported")
    lut = np.zeros(max(values) + 1, dtype=np.uint8)
    lut[values] = np.arange(len(values), dtype=np.uint8)
    return lut[array.astype(np.int64)], present.tolist()


def preprocess_case(
    case: CaseFiles,
    modalities: tuple[str, str],
    labels: LabelSpec | None,
    params: Preprocessing,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read, check and preprocess one case.

    Returns:
        ``arrays``: ``a``, ``b`` ``float32 (D, S, S)``; with a label, ``mask`` ``uint8
        (D, S, S)`` and ``source_mask`` ``uint8`` on the source grid (class indices);
        ``meta``: geometry, orientation, crop box, fit and the label values present.

    Raises:
        DataError: a missing, unreadable or truncated file; a 4D or colour-mixed image;
            2D and 3D files mixed; geometry that differs from modality ``a`` (without
            ``resample``); unexpected label values.
    """
    import SimpleITK as sitk

    name_a, name_b = modalities
    ref_path = case.images[name_a]
    reference = _as_scalar_volume(io.read_sitk(ref_path), ref_path)
    ref_geom = io.sitk_geometry(reference)

    def aligned(path: Path, role: str, label: bool = False, default: float = 0.0) -> Any:
        img = io.read_sitk(path)
        if not label:
            img = _as_scalar_volume(img, path)
        elif img.GetNumberOfComponentsPerPixel() != 1:
            raise DataError(f"{path}: {role} must be a single-channel image")
        if img.GetDimension() != reference.GetDimension():
            raise DataError(
                f"case {case.case_id!r}: 2D and 3D files mixed: {ref_path} is "
                f"{reference.GetDimension()}D, {path} is {img.GetDimension()}D"
            )
        diffs = io.compare_geometry(ref_geom, io.sitk_geometry(img), params.geometry_tolerance)
        if diffs:
            if not params.resample:
                raise DataError(
                    f"case {case.case_id!r}: {role} {path} does not match {name_a} {ref_path}: "
                    + "; ".join(diffs)
                    + f" (pass --resample to resample it onto {name_a})"
                )
            img = resample_like(img, reference, label=label, default=default)
        return img

    norm_a = params.norms.get(name_a, default_norm(name_a))
    norm_b = params.norms.get(name_b, default_norm(name_b))
    fill_b = params.ct_window[0] if norm_b == "ct" else 0.0
    other = aligned(case.images[name_b], f"modality {name_b}", default=fill_b)
    arr_a = sitk.GetArrayFromImage(reference).astype(np.float32, copy=False)
    arr_b = sitk.GetArrayFromImage(other).astype(np.float32, copy=False)
    for path, arr in ((ref_path, arr_a), (case.images[name_b], arr_b)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: image holds NaN or infinite values")

    is_2d = reference.GetDimension() == 2
    if is_2d:
        orientation = Orientation.identity(3)
        spacing = (1.0, *ref_geom.spacing)
    else:
        orientation = Orientation.from_direction(ref_geom.direction)
        spacing = orientation.spacing(ref_geom.spacing)

    def canonical(arr: np.ndarray) -> np.ndarray:
        return orientation.apply(arr[None] if is_2d else arr)

    arr_a, arr_b = canonical(arr_a), canonical(arr_b)

    if case.foreground is not None:
        fg_img = aligned(case.foreground, "foreground mask", label=True)
        foreground = canonical(sitk.GetArrayViewFromImage(fg_img)) > 0
        if not foreground.any():
            raise DataError(f"{case.foreground}: foreground mask is empty")
    else:
        foreground = (arr_a != 0) | (arr_b != 0)

    def normalise(arr: np.ndarray, norm: str) -> np.ndarray:
        if norm == "ct":
            return ct_window(arr, *params.ct_window)
        if norm == "mri":
            return percentile_normalise(arr, foreground, *params.percentiles)
        return np.clip(arr, 0.0, 1.0).astype(np.float32)

    arr_a, arr_b = normalise(arr_a, norm_a), normalise(arr_b, norm_b)

    mask: np.ndarray | None = None
    source_mask: np.ndarray | None = None
    present: list[int] = []
    if case.label is not None and labels is not None:
        lab_img = aligned(case.label, "label", label=True)
        source_mask, present = _label_indices(sitk.GetArrayFromImage(lab_img), case.label, labels)
        mask = canonical(source_mask)

    if params.crop:
        box = bounding_box(foreground, params.crop_margin)
    else:
        box = tuple((0, n) for n in arr_a.shape)
    crop = tuple(slice(a, b) for a, b in box)
    fit = Fit.plan(box[1][1] - box[1][0], box[2][1] - box[2][0], params.image_size, params.fit)

    arrays = {
        "a": fit.apply(np.ascontiguousarray(arr_a[crop])),
        "b": fit.apply(np.ascontiguousarray(arr_b[crop])),
    }
    if mask is not None and source_mask is not None:
        arrays["mask"] = fit.apply(np.ascontiguousarray(mask[crop]), label=True)
        arrays["source_mask"] = source_mask
    sy, sx = fit.scale
    meta = {
        "case_id": case.case_id,
        "ndim": 2 if is_2d else 3,
        "reference": ref_geom.to_dict(),
        "orientation": {"perm": list(orientation.perm), "flip": list(orientation.flip)},
        "box": [list(b) for b in box],
        "fit": {
            "source": list(fit.source),
            "resized": list(fit.resized),
            "size": fit.size,
            "offset": list(fit.offset),
        },
        "spacing": [spacing[0], spacing[1] / sy, spacing[2] / sx],
        "label_values_present": present,
        "norms": [norm_a, norm_b],
    }
    return arrays, meta


# -- splits ---------------------------------------------------------------------------
def assign_splits(
    case_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    fixed: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """A deterministic case-level split: no case has slices in two splits.

    Cases named in ``fixed`` keep their split; the others are shuffled with ``seed``
    (independent of the training seed, so every run of a leaderboard sees the same test
    cases) and cut into ``test_fraction`` and ``val_fraction`` of all cases (at least
    one each when the fraction is positive, rounded), the rest being ``train``.

    Raises:
        DataError: unknown or duplicated cases in ``fixed``, or too few cases for a
            non-empty training split.
    """
    fixed = {k: list(v) for k, v in (fixed or {}).items() if v}
    known = set(case_ids)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    seen: dict[str, str] = {}
    for split, ids in fixed.items():
        if split not in splits:
            raise ConfigError(f"unknown split {split!r} in the split lists (train, val, test)")
        for cid in ids:
            if cid not in known:
                raise DataError(f"split {split!r} names case {cid!r}, which the dataset lacks")
            if cid in seen:
                raise DataError(f"case {cid!r} is listed in both {seen[cid]!r} and {split!r}")
            seen[cid] = split
            splits[split].append(cid)
    rest = sorted(c for c in case_ids if c not in seen)
    order = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    n = len(case_ids)

    def quota(split: str, fraction: float) -> int:
        if split in fixed or fraction <= 0:
            return 0
        return max(1, round(n * fraction)) - len(splits[split])

    n_test = max(quota("test", test_fraction), 0)
    n_val = max(quota("val", val_fraction), 0)
    if "train" not in fixed and len(order) - n_test - n_val < 1:
        raise DataError(
            f"{n} case(s) are too few for test_fraction={test_fraction} and "
            f"val_fraction={val_fraction}: no case would be left for training"
        )
    splits["test"] += order[:n_test]
    splits["val"] += order[n_test : n_test + n_val]
    splits["train"] += order[n_test + n_val :] if "train" not in fixed else []
    return {k: sorted(v) for k, v in splits.items()}


# -- the dataset ----------------------------------------------------------------------
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
        val_fraction: float = 0.25,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        fixed_splits: Mapping[str, Sequence[str]] | None = None,
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
            [c.case_id for c in self._cases], val_fraction, test_fraction, split_seed, fixed_splits
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
            "seed": self.seed,
            "slices_per_case": self.slices_per_case,
            "lesion_fraction": self.lesion_fraction,
            "cache": str(self.cache.root) if self.cache.enabled else None,
        }


# -- options shared by the layout readers ---------------------------------------------
#: Library defaults of the options every volume layout accepts.
DEFAULTS: dict[str, Any] = {
    "image_size": 128,
    "resample": False,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "split_seed": 0,
    "slices_per_case": 0,
    "lesion_fraction": None,
    "ct_window": (-1000.0, 1000.0),
    "percentiles": (0.5, 99.5),
    "crop": True,
    "crop_margin": 2,
    "fit": "resize",
    "geometry_tolerance": 1e-3,
    "target": None,
}


def _optional(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def resolve_options(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge options (``None`` = not given) over defaults, parsing strings from the CLI."""
    from benchbox.data import options as opt

    merged = {**DEFAULTS, **{k: v for k, v in defaults.items() if v is not None}}
    merged.update({k: v for k, v in given.items() if v is not None})
    out = dict(merged)
    out["image_size"] = opt.as_int(merged["image_size"], "image_size", 16)
    out["resample"] = opt.as_bool(merged["resample"], "resample")
    out["crop"] = opt.as_bool(merged["crop"], "crop")
    out["val_fraction"] = opt.as_float(merged["val_fraction"], "val_fraction", 0.0, 0.9)
    out["test_fraction"] = opt.as_float(merged["test_fraction"], "test_fraction", 0.0, 0.9)
    out["split_seed"] = opt.as_int(merged["split_seed"], "split_seed")
    out["slices_per_case"] = opt.as_int(merged["slices_per_case"], "slices_per_case", 0)
    out["crop_margin"] = opt.as_int(merged["crop_margin"], "crop_margin", 0)
    out["geometry_tolerance"] = opt.as_float(merged["geometry_tolerance"], "geometry_tolerance", 0)
    out["ct_window"] = opt.as_float_pair(merged["ct_window"], "ct_window")
    out["percentiles"] = opt.as_float_pair(merged["percentiles"], "percentiles")
    lf = merged["lesion_fraction"]
    out["lesion_fraction"] = None if _optional(lf) else opt.as_float(lf, "lesion_fraction", 0, 1)
    out["target"] = None if _optional(merged["target"]) else str(merged["target"]).strip()
    out["fit"] = str(merged["fit"]).strip().lower()
    return out


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
        fixed_splits=fixed_splits,
        seed=opt.as_int(seed or 0, "seed"),
        slices_per_case=options["slices_per_case"],
        lesion_fraction=options["lesion_fraction"],
        target=options["target"],
        cache=SliceCache(enabled=opt.as_bool(cache, "cache")),
        source=source,
    )
