"""The example figure of a run: a few cases picked while a split is scored, drawn as a PNG
grid (A | B | fused | ground truth | prediction) with column titles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TITLE_HEIGHT", "ExamplePicker", "save_examples"]


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
