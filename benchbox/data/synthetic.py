"""A deterministic synthetic CT/MRI head phantom with lesion masks: the default dataset.

Each slice is an axial head section drawn from random ellipses and blobs:

==============  ===============  ==================  ===========================
tissue          CT (A)           MRI (B)             notes
==============  ===============  ==================  ===========================
air             0                0
scalp           0.22             0.55
skull           0.95             0.06                bright in CT, dark in MRI
grey matter     0.40             0.50
white matter    0.37             0.34                contrast only in MRI
ventricles      0.32             0.12
lesion          tissue - 0-0.03  0.85                clear in MRI, faint in CT
calcification   0.85             0.10                CT only; part of the lesion
==============  ===============  ==================  ===========================

(intensities jitter by a few percent per slice). About a third of the lesions hold a
calcified core that MRI shows as a dark hole and CT as a bright spot, so neither
modality alone outlines the whole lesion. Slices without a lesion are included. CT
gets Gaussian noise; MRI gets a smooth multiplicative bias field and Rician noise; both
are blurred by a small point-spread function. Optional misregistration shifts the MRI
by up to ``misregistration`` pixels; the mask is aligned with the CT.

Every slice is drawn from its own random stream, seeded by ``(seed, split, index)``
through NumPy's ``SeedSequence``, so a slice does not depend on how many others are
generated and the same seed gives the same slices on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from benchbox.data.base import BenchDataset, Sample
from benchbox.data.options import DatasetOption, as_float, as_int
from benchbox.errors import ConfigError

__all__ = ["SyntheticDataset", "draw_slice", "export", "generate"]

_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
_SKULL_CT, _SKULL_MR = 0.95, 0.06
_NOISE_BANK = 16


def _psf(img: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur (sigma ~0.7 px), by slicing: ten times faster than
    ``ndimage.gaussian_filter`` on slices this small."""
    p = np.pad(img, 1, mode="edge")
    p = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    return 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]


def _slice_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_CODES[split], index]))
    )


def _frame(u: np.ndarray, v: np.ndarray, cx: float, cy: float, angle: float, sx: float, sy: float):
    """Grid coordinates in a rotated frame centred on ``(cx, cy)`` and scaled by the axes."""
    # Python floats keep the float32 grid in float32 (NumPy 2 promotes on np.float64).
    c, s = float(np.cos(angle)), float(np.sin(angle))
    du, dv = u - float(cx), v - float(cy)
    sx, sy = float(sx), float(sy)
    return (c * du + s * dv) / sx, (-s * du + c * dv) / sy


def _window(size: int, cx: float, cy: float, reach: float) -> tuple[slice, slice]:
    """The pixel window that holds a shape of the given reach around ``(cx, cy)``."""

    def span(center: float) -> slice:
        lo = int(np.floor(((center - reach) + 1) / 2 * size)) - 1
        hi = int(np.ceil(((center + reach) + 1) / 2 * size)) + 1
        return slice(max(lo, 0), max(min(hi, size), 0))

    return span(cy), span(cx)


def _blob(rng: np.random.Generator, u, v, cx, cy, radius) -> tuple[tuple[slice, slice], np.ndarray]:
    """A random smooth star-shaped blob (radius modulated by a few harmonics).

    Only the window that can hold the blob is computed; returns the window and the
    blob's mask inside it.
    """
    angle = rng.uniform(0, np.pi)
    elong = rng.uniform(0.7, 1.3)
    amps = rng.uniform(0, 0.12, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    win = _window(u.shape[0], cx, cy, radius * 1.3 * (1 + amps.sum()))
    x, y = _frame(u[win], v[win], cx, cy, angle, radius * elong, radius / elong)
    theta = np.arctan2(y, x)
    edge = 1 + sum(
        float(a) * np.cos(k * theta + float(p))
        for k, a, p in zip((2, 3, 4), amps, phases, strict=True)
    )
    return win, x * x + y * y < edge * edge


def draw_slice(
    rng: np.random.Generator,
    size: int,
    lesion_free: float = 0.25,
    calcified: float = 0.35,
    misregistration: float = 0.0,
    noise_bank: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one slice: CT ``(H, W)``, MRI ``(H, W)`` float32 in [0, 1], mask uint8.

    ``noise_bank`` (``(K, 3, H, W)`` standard normal fields) replaces fresh noise by a
    randomly chosen and circularly shifted field of the bank: drawing 49k normals per
    slice would take most of the generation time budget.
    """
    lin = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(lin, lin, indexing="ij")
    j = lambda: rng.uniform(0.95, 1.05)  # noqa: E731  per-slice intensity jitter

    # Head: scalp, skull, brain as nested ellipses.
    cx, cy = rng.uniform(-0.04, 0.04, size=2)
    angle = rng.uniform(-0.25, 0.25)
    x, y = _frame(u, v, cx, cy, angle, rng.uniform(0.72, 0.82), rng.uniform(0.84, 0.92))
    r, theta = np.sqrt(x * x + y * y), np.arctan2(y, x)
    scalp_in = 1 - rng.uniform(0.03, 0.045)
    brain_r = scalp_in - rng.uniform(0.06, 0.09)
    head, inside_scalp, brain = r < 1, r < float(scalp_in), r < float(brain_r)
    folds = 1 + 0.06 * np.sin(int(rng.integers(6, 11)) * theta + float(rng.uniform(0, 2 * np.pi)))
    wm = r < float(brain_r * rng.uniform(0.68, 0.8)) * folds

    vent = np.zeros_like(head)
    half_gap = rng.uniform(0.06, 0.1)
    vy = cy + rng.uniform(-0.08, 0.02)
    va, vb = rng.uniform(0.05, 0.09), rng.uniform(0.14, 0.24)
    for side in (-1, 1):
        tilt = side * rng.uniform(0.1, 0.35)
        vcx = cx + side * half_gap
        win = _window(size, vcx, vy, vb)
        x, y = _frame(u[win], v[win], vcx, vy, angle + tilt, va, vb)
        vent[win] |= x * x + y * y < 1

    ct = np.zeros((size, size), np.float32)
    mr = np.zeros((size, size), np.float32)
    ct[head], mr[head] = 0.22 * j(), 0.55 * j()
    ct[inside_scalp], mr[inside_scalp] = _SKULL_CT * j(), _SKULL_MR * j()
    ct[brain], mr[brain] = 0.40 * j(), 0.50 * j()
    ct[wm], mr[wm] = 0.37 * j(), 0.34 * j()
    ct[vent], mr[vent] = 0.32 * j(), 0.12 * j()

    # Lesions: none in a share of the slices, else one to three random blobs in the brain.
    mask = np.zeros((size, size), np.uint8)
    n_lesions = 0 if rng.random() < lesion_free else int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    for _ in range(n_lesions):
        rho = rng.uniform(0.07, 0.18)
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.75) * (brain_r * 0.8 - rho)
        lx, ly = cx + dist * np.cos(ang) * 0.8, cy + dist * np.sin(ang) * 0.9
        win, blob = _blob(rng, u, v, lx, ly, rho)
        lesion = np.zeros_like(head)
        lesion[win] = blob
        lesion &= brain
        if not lesion.any():
            continue
        mask[lesion] = 1
        ct[lesion] -= rng.uniform(0.0, 0.03)  # faint hypodensity, sometimes invisible
        mr[lesion] = 0.85 * j()
        if rng.random() < calcified:
            off = rng.uniform(0, 0.35 * rho, size=2)
            win, blob = _blob(rng, u, v, lx + off[0], ly + off[1], rho * rng.uniform(0.35, 0.6))
            core = np.zeros_like(head)
            core[win] = blob
            core &= lesion
            ct[core], mr[core] = 0.85 * j(), 0.10 * j()

    # Acquisition: point-spread blur, MRI bias field and Rician noise, CT Gaussian noise.
    ct, mr = _psf(ct), _psf(mr)
    c = [float(x) for x in rng.normal(0, 1, size=4)]
    bias = 1 + 0.12 * (c[0] * u + c[1] * v + 0.5 * c[2] * u * v + 0.5 * c[3] * (u * u - v * v))
    mr = mr * np.clip(bias, 0.6, 1.4)
    if noise_bank is None:
        noise = rng.standard_normal((3, size, size), dtype=np.float32)
    else:
        noise = noise_bank[rng.integers(len(noise_bank))]
        noise = np.roll(noise, tuple(int(k) for k in rng.integers(size, size=2)), axis=(1, 2))
    ct = ct + 0.02 * noise[0]
    mr_re, mr_im = mr + 0.025 * noise[1], 0.025 * noise[2]
    mr = np.sqrt(mr_re * mr_re + mr_im * mr_im)
    if misregistration > 0:
        shift = rng.uniform(-misregistration, misregistration, size=2)
        from scipy import ndimage

        mr = ndimage.shift(mr, shift, order=1, mode="constant")
    return (
        np.clip(ct, 0, 1).astype(np.float32),
        np.clip(mr, 0, 1).astype(np.float32),
        mask,
    )


def generate(
    n: int,
    image_size: int = 64,
    seed: int = 0,
    split: str = "train",
    **params: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate ``n`` slices of a split: CT, MRI ``(n, H, W)`` float32 and masks uint8."""
    if split not in _SPLIT_CODES:
        raise ConfigError(
            f"synthetic split must be one of {', '.join(_SPLIT_CODES)}, not {split!r}"
        )
    bank_rng = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_CODES[split]]))
    )
    bank = bank_rng.standard_normal((_NOISE_BANK, 3, image_size, image_size), dtype=np.float32)
    ct = np.empty((n, image_size, image_size), np.float32)
    mr = np.empty_like(ct)
    mask = np.empty((n, image_size, image_size), np.uint8)
    for i in range(n):
        ct[i], mr[i], mask[i] = draw_slice(
            _slice_rng(seed, split, i), image_size, noise_bank=bank, **params
        )
    return ct, mr, mask


class _Split:
    """A map-style dataset over one generated split (tensors made on access)."""

    def __init__(
        self, ct: np.ndarray, mr: np.ndarray, mask: np.ndarray, split: str, spacing: float
    ):
        self.ct, self.mr, self.mask, self.split = ct, mr, mask, split
        self.spacing = (spacing, spacing)

    def __len__(self) -> int:
        return len(self.ct)

    def __getitem__(self, i: int) -> Sample:
        import torch

        return {
            "a": torch.from_numpy(self.ct[i][None]),
            "b": torch.from_numpy(self.mr[i][None]),
            "mask": torch.from_numpy(self.mask[i].astype(np.int64)),
            "case_id": f"{self.split}-{i:05d}",
            "spacing": torch.tensor(self.spacing, dtype=torch.float64),
        }


class SyntheticDataset(BenchDataset):
    """Synthetic CT/MRI head phantom with lesion masks; embedded, no download."""

    name = "synthetic"
    modalities = ("CT", "MRI")
    labels: Mapping[int, str] = MappingProxyType({0: "background", 1: "lesion"})
    #: The parameters' values, checked before anything is built (the pre-flight check
    #: calls them through :func:`benchbox.data.options.check_declared`).
    declared_options: ClassVar[Mapping[str, DatasetOption]] = MappingProxyType(
        {
            "image_size": DatasetOption(64, "side of the slices", lambda v, k: as_int(v, k, 16)),
            **{
                f"n_{split}": DatasetOption(n, f"{split} slices", lambda v, k: as_int(v, k, 0))
                for split, n in (("train", 256), ("val", 32), ("test", 64))
            },
            "lesion_free": DatasetOption(
                0.25, "share of slices without lesion", lambda v, k: as_float(v, k, 0, 1)
            ),
            "calcified": DatasetOption(
                0.35, "share of calcified lesions", lambda v, k: as_float(v, k, 0, 1)
            ),
            "misregistration": DatasetOption(
                0.0, "misregistration of MRI (pixels)", lambda v, k: as_float(v, k, 0)
            ),
        }
    )

    def __init__(
        self,
        image_size: int = 64,
        n_train: int = 256,
        n_val: int = 32,
        n_test: int = 64,
        seed: int = 0,
        lesion_free: float = 0.25,
        calcified: float = 0.35,
        misregistration: float = 0.0,
        fov_mm: float = 220.0,
    ) -> None:
        given = {
            "image_size": image_size,
            "n_train": n_train,
            "n_val": n_val,
            "n_test": n_test,
            "lesion_free": lesion_free,
            "calcified": calcified,
            "misregistration": misregistration,
        }
        try:
            checked = {k: self.declared_options[k].parse(v, k) for k, v in given.items()}
        except ConfigError as exc:
            raise ConfigError(f"synthetic: {exc}") from None
        image_size = checked["image_size"]
        counts = {split: checked[f"n_{split}"] for split in ("train", "val", "test")}
        if misregistration < 0 or fov_mm <= 0:
            raise ConfigError("synthetic: misregistration must be >= 0 and fov_mm > 0")
        self.image_size, self.counts, self.seed = image_size, counts, seed
        self.params = {
            "lesion_free": lesion_free,
            "calcified": calcified,
            "misregistration": misregistration,
        }
        self.fov_mm = fov_mm
        self._cache: dict[str, _Split] = {}

    @property
    def spacing_mm(self) -> float:
        return self.fov_mm / self.image_size

    def split(self, name: str) -> Sequence[Sample]:
        self.check_split(name)
        if name not in self._cache:
            arrays = generate(self.counts[name], self.image_size, self.seed, name, **self.params)
            self._cache[name] = _Split(*arrays, split=name, spacing=self.spacing_mm)
        return self._cache[name]  # type: ignore[return-value]

    def config(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "seed": self.seed,
            "fov_mm": self.fov_mm,
            "spacing_mm": self.spacing_mm,
            **{f"n_{k}": v for k, v in self.counts.items()},
            **self.params,
        }


def export(
    dataset: SyntheticDataset, out: str | Path, formats: Sequence[str] = ("nifti", "png")
) -> Path:
    """Write a generated set to disk for viewing and for testing the file readers.

    * ``nifti``: the nnU-Net v2 raw layout (``imagesTr/<case>_0000.nii.gz`` for CT,
      ``_0001`` for MRI, ``labelsTr/<case>.nii.gz``, test cases in ``imagesTs`` and
      ``labelsTs``, and ``dataset.json``), one 2D image per slice with its spacing;
    * ``png``: the pairs layout ``<split>/<CT|MRI|mask>/<case>.png`` (8-bit; the mask
      holds 0 and 255).
    """
    import json

    from benchbox.data.io import write_image

    out = Path(out)
    unknown = set(formats) - {"nifti", "png"}
    if unknown:
        raise ConfigError(f"unknown export format(s) {', '.join(sorted(unknown))}; use nifti, png")
    spacing = (dataset.spacing_mm, dataset.spacing_mm)
    for split in dataset.splits:
        data = dataset.split(split)
        assert isinstance(data, _Split)
        tr = "Ts" if split == "test" else "Tr"
        for i in range(len(data)):
            case = f"synthetic_{split}_{i:05d}"
            if "nifti" in formats:
                nn = out / "nifti"
                write_image(data.ct[i], nn / f"images{tr}" / f"{case}_0000.nii.gz", spacing=spacing)
                write_image(data.mr[i], nn / f"images{tr}" / f"{case}_0001.nii.gz", spacing=spacing)
                write_image(data.mask[i], nn / f"labels{tr}" / f"{case}.nii.gz", spacing=spacing)
            if "png" in formats:
                for mod, arr in (("CT", data.ct[i]), ("MRI", data.mr[i])):
                    write_image(
                        np.round(arr * 255).astype(np.uint8),
                        out / "png" / split / mod / f"{case}.png",
                    )
                write_image(
                    data.mask[i] * np.uint8(255), out / "png" / split / "mask" / f"{case}.png"
                )
    if "nifti" in formats:
        meta = {
            "name": "benchbox-synthetic",
            "description": "benchbox synthetic CT/MRI head phantom",
            "channel_names": {"0": "CT", "1": "MRI"},
            "labels": {"background": 0, "lesion": 1},
            "numTraining": dataset.counts["train"] + dataset.counts["val"],
            "file_ending": ".nii.gz",
            "benchbox": dataset.config(),
        }
        (out / "nifti").mkdir(parents=True, exist_ok=True)
        (out / "nifti" / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out
