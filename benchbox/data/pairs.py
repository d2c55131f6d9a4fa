"""Registered 2D image pairs in modality folders, the layout of the AANLIB fusion sets::

    <root>/train/CT/16003.png     <root>/train/MRI/16003.png
    <root>/test/CT/2004.png       <root>/test/MRI/2004.png
    <root>/train/mask/16003.png   # optional: binary masks (0/1 or 0/255)

The same file name in both modality folders is one registered pair. Colour sources
(pseudo-colour PET or SPECT) are split into YCbCr (:mod:`benchbox.data.color`): the
source tensor is ``Y``, the BT.601 luma rounded to the file's bit depth as OpenCV and
Pillow compute it, and the sample carries the chroma as ``a_chroma``/``b_chroma``
``(2, H, W)`` to colour the fused image afterwards; fusion metrics see ``Y`` only. An
alpha channel is dropped and an RGB file with three equal channels is greyscale. A
modality is colour when any of its files is; its greyscale files (in any split) get
the neutral chroma of a grey pixel, 0.5, which is exact. A modality that mixes colour
and greyscale files is read that way with a :class:`~benchbox.errors.DataWarning`
naming its colour files (one stray RGBA file makes a grey modality colour).

Hidden files and folders, whose names start with ``.`` (``.DS_Store``, macOS's
``._<name>.png`` copies, editors' swap files), are not part of the dataset and are
skipped without a word; so are files that are not images.

Splits: ``train`` and ``test`` are the folders. ``val`` is the ``val`` folder if there
is one, else a fixed share (``val_fraction``) of the ``train`` pairs chosen with
``split_seed`` and removed from ``train`` by the same case-level split as every other
reader (:mod:`benchbox.data.splits`); it does not change with the run seed, so all runs
train on the same pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data import io
from benchbox.data.base import BenchDataset, Sample
from benchbox.data.cache import CacheEntry, SliceCache, cache_key, file_digest
from benchbox.data.color import channels, rgb_to_grey, rgb_to_ycbcr
from benchbox.data.options import DEFAULTS, OPTIONS, as_bool, as_modalities
from benchbox.data.paths import slugify
from benchbox.data.preprocess import Fit, resize_stack
from benchbox.data.splits import assign_splits
from benchbox.errors import ConfigError, DataError, DataWarning

__all__ = ["MASK_FOLDERS", "PairSplit", "PairsDataset", "open_pairs"]

#: Folder names holding masks rather than a modality.
MASK_FOLDERS = ("mask", "masks", "label", "labels", "seg")


def _to_unit(array: np.ndarray, path: Path) -> np.ndarray:
    """Pixel values to ``[0, 1]``: 8/16-bit by their full range, others by min-max."""
    if array.dtype in (np.uint8, np.uint16):
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    arr = array.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: image holds NaN or infinite values")
    if arr.size and arr.min() >= 0 and arr.max() <= 1:
        return arr
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _read_2d(path: Path) -> io.Image:
    """A 2D image; a 3D file with one slice counts as 2D."""
    img = io.read_image(path)
    if img.ndim == 3 and img.array.shape[0] == 1:
        img = io.Image(img.array[0], img.spacing[1:], img.origin[1:], (1.0, 0.0, 0.0, 1.0), path)
    if img.ndim != 2:
        raise DataError(
            f"{path}: a {img.ndim}D image in a folder of 2D pairs (2D and 3D files mixed)"
        )
    return img


def _modality_folders(split_dir: Path) -> list[str]:
    return sorted(
        p.name
        for p in split_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in MASK_FOLDERS
    )


def _mask_folder(split_dir: Path) -> Path | None:
    hits = [p for p in split_dir.iterdir() if p.is_dir() and p.name.lower() in MASK_FOLDERS]
    return hits[0] if hits else None


def _images(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not io.is_image_file(path):
            continue
        stem = io.strip_suffix(path)
        if stem in out:
            raise DataError(
                f"{folder}: two files for pair {stem!r} ({out[stem].name}, {path.name})"
            )
        out[stem] = path
    return out


def _split_colour(img: io.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Greyscale -> (values, None); colour -> (Y, CbCr ``(2, H, W)``), all in ``[0, 1]``.

    ``Y`` of an integer image is its luma rounded to the image's bit depth
    (:func:`benchbox.data.color.rgb_to_grey`); the chroma stays in floating point.
    """
    path = img.path or Path("?")
    pixels, colour = channels(img.array, img.components, path)
    if not colour:
        return _to_unit(pixels, path), None
    ycc = rgb_to_ycbcr(_to_unit(pixels, path)).astype(np.float32)
    if np.issubdtype(pixels.dtype, np.integer):
        luma = _to_unit(rgb_to_grey(pixels), path)
    else:
        luma = ycc[..., 0]
    return luma, np.ascontiguousarray(np.moveaxis(ycc[..., 1:], -1, 0))


def _filled(value: np.ndarray | None, key: str, shape: tuple[int, int]) -> np.ndarray:
    """A missing chroma (greyscale image of a colour modality) is neutral grey, 0.5."""
    if value is None:
        return np.full((2, *shape), 0.5, dtype=np.float32)
    return value.astype(np.uint8 if key == "mask" else np.float32, copy=False)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A binary mask (0/1 or 0/255) as ``uint8`` 0/1."""
    img = _read_2d(path)
    if img.components != 1 or img.array.shape != shape:
        raise DataError(f"{path}: a mask must be greyscale of size {shape}")
    values = set(np.unique(img.array).tolist())
    if not values <= {0, 1} and not values <= {0, 255}:
        bad = sorted(values - {0, 1, 255})[:5] or sorted(values)
        raise DataError(
            f"{path}: unexpected label values {bad} (a binary mask holds 0 and 1, or 0 and 255)"
        )
    return (img.array > 0).astype(np.uint8)


class PairSplit(Sequence[Sample]):
    """A map-style dataset over one split's cached pairs; tensors made on access."""

    def __init__(self, entry: CacheEntry, rows: Sequence[int], colour: Mapping[str, bool]) -> None:
        self.entry, self.rows, self.colour = entry, list(rows), dict(colour)
        self.names: list[str] = entry.meta["names"]
        self.labelled = entry.has("mask")
        self.chroma = {k: entry.has(f"{k}_chroma") for k in ("a", "b")}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        import torch

        row = self.rows[i]
        spacing = self.entry.meta["spacing"][row]
        sample: Sample = {
            "a": torch.from_numpy(np.array(self.entry.array("a")[row], dtype=np.float32)[None]),
            "b": torch.from_numpy(np.array(self.entry.array("b")[row], dtype=np.float32)[None]),
            "case_id": self.names[row],
            "spacing": torch.tensor(spacing, dtype=torch.float64),
        }
        for key in ("a", "b"):
            if not self.colour[key]:
                continue
            if self.chroma[key]:
                chroma = np.array(self.entry.array(f"{key}_chroma")[row], dtype=np.float32)
            else:  # a split whose images of a colour modality are all greyscale
                chroma = np.full((2, *sample[key].shape[1:]), 0.5, dtype=np.float32)
            sample[f"{key}_chroma"] = torch.from_numpy(chroma)
        if self.labelled:
            sample["mask"] = torch.from_numpy(
                np.array(self.entry.array("mask")[row], dtype=np.int64)
            )
        return sample


class PairsDataset(BenchDataset):
    """Registered 2D pairs in ``<root>/<split>/<MODALITY>/<name>.<ext>``; see the module."""

    def __init__(
        self,
        root: Path,
        modalities: tuple[str, str],
        image_size: int | None,
        resample: bool,
        val_fraction: float,
        split_seed: int,
        name: str,
        cache: SliceCache,
    ) -> None:
        self.root, self.modalities, self.name = root, modalities, name
        self.image_size, self.resample = image_size, resample
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.cache = cache
        self._entries: dict[str, CacheEntry] = {}
        self._rows: dict[str, list[int]] = {}
        folders = ["train", "test"] + (["val"] if (root / "val").is_dir() else [])
        for split in folders:
            self._entries[split] = self._load(split)
        # A modality is colour if any of its images is; grey splits get neutral chroma.
        colour = {k: any(e.meta["colour"][k] for e in self._entries.values()) for k in ("a", "b")}
        self.colour = colour
        self._warn_mixed_colour()
        self.color_source = next((k for k in ("a", "b") if colour[k]), None)
        labelled = {s: e.has("mask") for s, e in self._entries.items()}
        if len(set(labelled.values())) > 1:
            raise DataError(f"{root}: some splits have a mask folder and others do not")
        self.labels = {0: "background", 1: "foreground"} if labelled["train"] else None
        for split, entry in self._entries.items():
            self._rows[split] = list(range(len(entry.meta["names"])))
        if "val" not in self._entries:
            names = self._entries["train"].meta["names"]
            chosen = assign_splits(names, val_fraction, 0.0, split_seed)
            index = {n: i for i, n in enumerate(names)}
            self._entries["val"] = self._entries["train"]
            self._rows["val"] = sorted(index[n] for n in chosen["val"])
            self._rows["train"] = sorted(index[n] for n in chosen["train"])

    def _warn_mixed_colour(self) -> None:
        """A :class:`DataWarning` per modality whose files mix colour and greyscale."""
        for key, modality in zip(("a", "b"), self.modalities, strict=True):
            found = [f for e in self._entries.values() for f in e.meta["colour_files"][key]]
            total = sum(len(e.meta["names"]) for e in self._entries.values())
            if not found or len(found) == total:
                continue
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            warnings.warn(
                f"{self.root}: modality {modality} is read as colour because {len(found)} of "
                f"its {total} images {'is' if len(found) == 1 else 'are'} colour ({shown}); "
                f"its {total - len(found)} greyscale images get neutral chroma (save the "
                "colour ones as greyscale if the modality is grey)",
                DataWarning,
                stacklevel=3,
            )

    def _load(self, split: str) -> CacheEntry:
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise DataError(
                f"{split_dir}: no such folder (pairs need {self.root}/<split>/<MODALITY>/)"
            )
        a_name, b_name = self.modalities
        folders = {m: split_dir / m for m in self.modalities}
        for mod, folder in folders.items():
            if not folder.is_dir():
                found = ", ".join(_modality_folders(split_dir)) or "none"
                raise DataError(f"{folder}: missing modality folder {mod} (found: {found})")
        files = {m: _images(f) for m, f in folders.items()}
        mask_dir = _mask_folder(split_dir)
        masks = _images(mask_dir) if mask_dir is not None else None
        names = sorted(set(files[a_name]) | set(files[b_name]))
        if not names:
            raise DataError(f"{split_dir}: empty dataset, no image in {a_name}/ or {b_name}/")
        for stem in names:
            for mod, other in ((a_name, b_name), (b_name, a_name)):
                if stem not in files[mod]:
                    raise DataError(
                        f"{files[other][stem]}: missing modality file {folders[mod] / stem}.*"
                    )
            if masks is not None and stem not in masks:
                raise DataError(f"{files[a_name][stem]}: missing mask file {mask_dir}/{stem}.*")
        sources = [files[a_name][s] for s in names] + [files[b_name][s] for s in names]
        if masks is not None:
            sources += [masks[s] for s in names]
        key = cache_key(
            kind="pairs",
            meta="colour_files",  # entries made before it was recorded are rebuilt
            digests=[file_digest(p) for p in sources],
            names=names,
            image_size=self.image_size,
            resample=self.resample,
        )
        entry = self.cache.get(key)
        if entry is None:
            arrays, meta = self._build(names, files, masks)
            entry = self.cache.put(key, arrays, meta)
        return entry

    def _build(
        self,
        names: list[str],
        files: Mapping[str, Mapping[str, Path]],
        masks: Mapping[str, Path] | None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        a_name, b_name = self.modalities
        raw: list[dict[str, Any]] = []
        for stem in names:
            img_a = _read_2d(files[a_name][stem])
            img_b = _read_2d(files[b_name][stem])
            shape = img_a.array.shape[:2]
            if img_b.array.shape[:2] != shape and not self.resample:
                raise DataError(
                    f"{img_b.path}: size {img_b.array.shape[:2]} does not match "
                    f"{img_a.path} {shape} (pass --resample to resize it)"
                )
            item: dict[str, Any] = {"shape": shape, "spacing": img_a.spacing}
            for key, img in (("a", img_a), ("b", img_b)):
                luma, chroma = _split_colour(img)
                if luma.shape != shape:  # resample: onto a's pixel grid
                    luma = resize_stack(luma[None], shape)[0]
                    chroma = None if chroma is None else resize_stack(chroma, shape)
                item[key], item[f"{key}_chroma"] = luma, chroma
            if masks is not None:
                item["mask"] = _read_mask(masks[stem], shape)
            raw.append(item)

        colour = {k: any(r[f"{k}_chroma"] is not None for r in raw) for k in ("a", "b")}
        colour_files = {
            k: [
                files[mod][stem].relative_to(self.root).as_posix()
                for stem, r in zip(names, raw, strict=True)
                if r[f"{k}_chroma"] is not None
            ]
            for k, mod in (("a", a_name), ("b", b_name))
        }
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(raw):
            groups.setdefault(item["shape"], []).append(i)
        if self.image_size is None and (len(groups) > 1 or any(h != w for h, w in groups)):
            raise DataError(
                f"{self.root}: images of size {', '.join(map(str, sorted(groups)))}; "
                f"give image_size to fit them to one square size"
            )
        size = self.image_size or next(iter(groups))[0]
        keys = ["a", "b"] + [f"{k}_chroma" for k in ("a", "b") if colour[k]]
        keys += ["mask"] if masks is not None else []
        arrays: dict[str, np.ndarray] = {}
        spacing: list[list[float]] = [[]] * len(raw)
        for (h, w), idx in groups.items():
            fit = Fit.plan(h, w, size, "resize")  # one batched resize per image size
            for key in keys:
                stack = np.stack([_filled(raw[i][key], key, (h, w)) for i in idx])
                fitted = fit.apply(stack, label=key == "mask")
                if key not in arrays:
                    arrays[key] = np.zeros((len(raw), *fitted.shape[1:]), dtype=fitted.dtype)
                arrays[key][idx] = fitted
            sy, sx = fit.scale
            for i in idx:
                sp = raw[i]["spacing"]
                spacing[i] = [sp[0] / sy, sp[1] / sx]
        meta = {
            "names": names,
            "spacing": spacing,
            "colour": colour,
            "colour_files": colour_files,
            "modalities": list(self.modalities),
        }
        return arrays, meta

    def split(self, name: str) -> Sequence[Sample]:
        self.check_split(name)
        rows = self._rows[name]
        if not rows:
            raise DataError(
                f"dataset {self.name!r}: split {name!r} holds no pair (val_fraction="
                f"{self.val_fraction})"
            )
        return PairSplit(self._entries[name], rows, self.colour)

    def has_foreground(self, split: str) -> bool | None:
        """Whether a mask of ``split`` holds a foreground pixel (``None``: no masks)."""
        self.check_split(split)
        entry = self._entries[split]
        if not entry.has("mask"):
            return None
        masks = entry.array("mask")
        return any(bool(np.asarray(masks[row]).any()) for row in self._rows[split])

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layout": "pairs",
            "root": str(self.root),
            "modalities": list(self.modalities),
            "colour": self.colour,
            "image_size": self.image_size,
            "resample": self.resample,
            "val": "folder" if (self.root / "val").is_dir() else f"{self.val_fraction} of train",
            "split_seed": self.split_seed,
            "counts": {s: len(r) for s, r in self._rows.items()},
            "val_cases": [self._entries["val"].meta["names"][i] for i in self._rows["val"]],
            "cache": str(self.cache.root) if self.cache.enabled else None,
        }


def _default_modalities(root: Path) -> tuple[str, str]:
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{train}: no such folder (pairs need {root}/train/<MODALITY>/)")
    found = _modality_folders(train)
    if len(found) < 2:
        raise DataError(f"{train}: needs two modality folders, found {found or 'none'}")
    # "CT-MRI" names the order of its two modalities.
    parts = [p.lower() for p in root.name.replace("_", "-").split("-")]
    by_lower = {f.lower(): f for f in found}
    if len(parts) == 2 and all(p in by_lower for p in parts):
        return by_lower[parts[0]], by_lower[parts[1]]
    if len(found) > 2:
        raise DataError(
            f"{train}: {len(found)} modality folders ({', '.join(found)}); choose two with "
            f"--data-opt modalities=A,B"
        )
    return found[0], found[1]


def open_pairs(
    root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    resample: bool = DEFAULTS["resample"],
    modalities: str | None = None,
    val_fraction: float = DEFAULTS["val_fraction"],
    split_seed: int = DEFAULTS["split_seed"],
    name: str | None = None,
    cache: bool = True,
) -> PairsDataset:
    """Registered 2D pairs (PNG, TIFF, ...) in ``<root>/<split>/<MODALITY>/<name>.<ext>``.

    Args:
        root: the pair folder, e.g. ``.../aanlib/CT-MRI``.
        image_size: side of the square slices (default: the images' own size).
        seed: the run seed (unused: every pair of a split is used).
        resample: resize a source whose size differs from its partner instead of failing.
        modalities: ``"A,B"``, the two modality folders (default: the folder name's
            order, ``CT-MRI`` -> CT, MRI; else the two folders alphabetically).
        val_fraction: share of ``train`` held out as ``val`` when there is no ``val``
            folder, chosen with ``split_seed`` by :func:`benchbox.data.splits.assign_splits`
            (the same for every run seed); defaults declared in
            :data:`benchbox.data.options.OPTIONS`.
        split_seed: seed of that choice.
        name: the leaderboard slug (default: parent and folder, ``aanlib-ct-mri``).
        cache: use the preprocessing cache (``BENCHBOX_CACHE``).
    """
    if root is None:
        raise ConfigError("dataset 'pairs' needs a folder: --dataset pairs:<dir>")
    folder = Path(str(root)).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    mods = as_modalities(modalities) if modalities is not None else _default_modalities(folder)
    size = (
        None
        if image_size is None or str(image_size).lower() == "none"
        else OPTIONS["image_size"].parse(image_size, "image_size")
    )
    folder = folder.resolve()
    return PairsDataset(
        root=folder,
        modalities=mods,
        image_size=size,
        resample=OPTIONS["resample"].parse(resample, "resample"),
        val_fraction=OPTIONS["val_fraction"].parse(val_fraction, "val_fraction"),
        split_seed=OPTIONS["split_seed"].parse(split_seed, "split_seed"),
        name=name or slugify(folder.parent.name, folder.name),
        cache=SliceCache(enabled=as_bool(cache, "cache")),
    )
