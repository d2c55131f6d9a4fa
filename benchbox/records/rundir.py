"""The run directory ``runs/<run_id>/``: config, environment, metrics, per-case results,
checkpoint, example figure, and a status file that says how the run ended.

Every file here is written atomically (:mod:`benchbox.records.atomic`): a run that fails or is
interrupted while writing leaves the previous file or none, never a partial one.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.errors import ConfigError
from benchbox.records import atomic
from benchbox.records.status import STATUS_FILE, StatusFile

__all__ = [
    "STATUS_FILE",
    "RunDir",
    "check_writable",
    "environment",
    "load_checkpoint",
    "new_run_id",
    "save_checkpoint",
    "save_examples",
    "write_json",
]


def new_run_id(fusion: str, seg: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{fusion}-{seg}-s{seed}-{secrets.token_hex(2)}"


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN and infinities become null (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically; NaN and infinities become null.

    Raises:
        WriteError: the file could not be written (the previous one is intact).
    """
    text = json.dumps(_clean(data), indent=2, default=str) + "\n"
    return atomic.write_text(path, text)


class RunDir:
    """One run's folder; the status file is written first and updated last.

    While the status is ``running`` a heartbeat rewrites it every ``heartbeat_s`` seconds
    (default :data:`benchbox.records.status.HEARTBEAT_S`), with the pid and host of the run.
    """

    def __init__(self, out: str | Path, run_id: str, heartbeat_s: float | None = None) -> None:
        self.run_id = run_id
        self.path = Path(out) / "runs" / run_id
        self.status = StatusFile(self.path / STATUS_FILE, run_id, heartbeat_s)
        self.started = self.status.started

    def create(self) -> RunDir:
        """Create the folder and its ``running`` status, or neither.

        Raises:
            WriteError: the folder or its status file could not be written.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise
        except OSError as exc:
            raise atomic.write_error(exc, self.path, "creating") from exc
        try:
            self.set_status("running")
        except BaseException:
            self.status.stop()
            with contextlib.suppress(OSError):
                self.path.rmdir()
            raise
        return self

    def set_status(self, status: str, error: str | None = None, **extra: Any) -> None:
        """Write the status file (see :mod:`benchbox.records.status` for its fields)."""
        self.status.set(status, error, **extra)

    def write_json(self, name: str, data: Any) -> Path:
        return write_json(self.path / name, data)

    def file(self, name: str) -> Path:
        return self.path / name


def check_writable(out: str | Path, leaderboards: str | Path | None = None) -> Path:
    """Fail early, with one clear message, if the output folder (its ``runs/``) or the
    leaderboard folder (default ``out/leaderboards``) cannot take a run."""
    out = Path(out)
    for folder in (out / "runs", Path(leaderboards) if leaderboards else out / "leaderboards"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"output folder {folder} is not writable ({reason})") from None
    return out


def environment(
    device: Any, device_label: str, amp: Mapping[str, Any], registry: Any
) -> dict[str, Any]:
    """Versions and hardware of a run: what someone needs to reproduce it."""
    import importlib.metadata as md

    import torch

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    plugins: dict[str, str | None] = {}
    for entry in registry:
        if entry.provider.distribution:
            plugins[entry.provider.distribution] = entry.provider.version
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "benchbox": version("benchbox"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "libraries": {
            d: version(d)
            for d in (
                "timm",
                "segmentation-models-pytorch",
                "SimpleITK",
                "scipy",
                "pandas",
                "pluggy",
            )
        },
        "plugin_distributions": dict(sorted(plugins.items())),
        "device": str(device),
        "device_name": device_label,
        "torch_threads": torch.get_num_threads(),
        "amp": dict(amp),
    }


def save_checkpoint(path: Path, modules: Mapping[str, Any]) -> Path:
    """Save ``{name: state_dict}`` of the trained modules (tensors only, no pickled code)."""
    import torch

    state = {name: module.state_dict() for name, module in modules.items() if module is not None}
    with atomic.atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_checkpoint(path: str | Path) -> dict[str, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`, never unpickling code."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


class ExamplePicker:
    """Keeps a few cases for the example figure: those with the largest labelled area
    (the most to see), then unlabelled ones in order of arrival."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ranked: list[tuple[int, int, dict[str, np.ndarray]]] = []
        self.others: list[dict[str, np.ndarray]] = []
        self._count = 0

    def offer(
        self,
        a: np.ndarray,
        b: np.ndarray,
        fused: np.ndarray | None,
        mask: np.ndarray | None,
        pred: np.ndarray | None,
    ) -> None:
        if self.n <= 0:  # --examples 0: no figure
            return
        area = int(np.count_nonzero(mask)) if mask is not None else 0
        self._count += 1
        if area == 0 and len(self.others) >= self.n:
            return
        if area and len(self.ranked) >= self.n and area <= self.ranked[-1][0]:
            return
        item = {"a": np.array(a), "b": np.array(b)}
        for key, value in (("fused", fused), ("mask", mask), ("pred", pred)):
            if value is not None:
                item[key] = np.array(value)
        if area == 0:
            self.others.append(item)
            return
        self.ranked.append((area, -self._count, item))
        self.ranked.sort(key=lambda t: (t[0], t[1]), reverse=True)
        del self.ranked[self.n :]

    def chosen(self) -> list[dict[str, np.ndarray]]:
        return ([item for _, _, item in self.ranked] + self.others)[: self.n]


def _to_uint8(img: np.ndarray, labels: bool) -> np.ndarray:
    if labels:
        top = max(int(img.max()), 1)
        return (img.astype(np.float64) / top * 255).round().astype(np.uint8)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


#: Height in pixels of the title strip above the example grid's columns.
TITLE_HEIGHT = 20


def _titles(widths: Sequence[int], gap: int, titles: Sequence[str]) -> np.ndarray:
    """A white strip with each title centred over its column (Pillow's own font)."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("L", (sum(widths) + gap * (len(widths) - 1), TITLE_HEIGHT), 255)
    draw = ImageDraw.Draw(strip)
    try:
        font: Any = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    x = 0
    for width, title in zip(widths, titles, strict=True):
        left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
        draw.text(
            (x + (width - (right - left)) / 2 - left, (TITLE_HEIGHT - (bottom - top)) / 2 - top),
            title,
            fill=0,
            font=font,
        )
        x += width + gap
    return np.asarray(strip)


def save_examples(
    path: Path,
    examples: Sequence[Mapping[str, np.ndarray]],
    modalities: Sequence[str] | None = None,
) -> Path | None:
    """A PNG grid, one row per case: A | B | fused | ground truth | prediction, with the
    column titles on top (``A: CT``, ``B: MRI`` when ``modalities`` are given).

    Panels a run does not have (no fusion, no segmenter) are left out; label panels
    show class indices scaled to the grey range.
    """
    from benchbox.data.io import write_image

    if not examples:
        return None
    keys = [k for k in ("a", "b", "fused", "mask", "pred") if k in examples[0]]
    names = {"a": "A", "b": "B", "fused": "fused", "mask": "ground truth", "pred": "prediction"}
    if modalities is not None and len(modalities) >= 2:
        names["a"], names["b"] = f"A: {modalities[0]}", f"B: {modalities[1]}"
    gap = 2
    rows = []
    widths: list[int] = []
    for ex in examples:
        panels = [_to_uint8(ex[k], labels=k in ("mask", "pred")) for k in keys]
        # Small training sizes (64 px) are enlarged by pixel repetition to stay legible.
        zoom = max(1, 128 // panels[0].shape[0])
        panels = [p.repeat(zoom, axis=0).repeat(zoom, axis=1) for p in panels]
        widths = [p.shape[1] for p in panels]
        h = panels[0].shape[0]
        sep = np.full((h, gap), 255, np.uint8)
        row = panels[0]
        for p in panels[1:]:
            row = np.concatenate([row, sep, p], axis=1)
        rows.append(row)
    width = rows[0].shape[1]
    grid = _titles(widths, gap, [names[k] for k in keys])
    for r in rows:
        grid = np.concatenate([grid, np.full((gap, width), 255, np.uint8), r], axis=0)
    write_image(grid, path)
    return path
