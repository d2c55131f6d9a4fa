"""A cache of preprocessed slices, keyed by the source files' checksums and the parameters.

Each entry is one folder ``<root>/slices/<key>/`` with one ``.npy`` per array (read back
memory-mapped, so a split costs no memory until its slices are used), optional
compressed ``.npz`` arrays, and ``meta.json``. The key is the SHA-256 of the files'
SHA-256 digests, the preprocessing parameters and :data:`CACHE_VERSION`, so editing a
source file or changing a parameter builds a new entry; a second run with the same
inputs reads no image file. Entries are written to a temporary folder and renamed into
place, so an interrupted or concurrent run never leaves half an entry.

The root is ``$BENCHBOX_CACHE`` or ``~/.cache/benchbox`` (:func:`cache_root`); it is
never pruned automatically and can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchbox.data.paths import cache_root
from benchbox.errors import ConfigError
from benchbox.records.atomic import StagedFolder

__all__ = ["CACHE_VERSION", "CacheEntry", "SliceCache", "cache_key", "file_digest"]

#: Bump when the preprocessing code changes what it writes for the same parameters.
CACHE_VERSION = 2

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, or of every file in a folder (a DICOM series) with its name."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    """A stable hex key for JSON-serialisable ``parts`` (digests, parameters)."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CacheEntry:
    """The arrays and metadata of one cached item, on disk or in memory."""

    def __init__(
        self,
        meta: Mapping[str, Any],
        path: Path | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.meta = dict(meta)
        self.path = path
        self._arrays = dict(arrays or {})

    def array(self, name: str) -> np.ndarray:
        """The array ``name``: memory-mapped ``.npy`` or decompressed ``.npz``."""
        if name in self._arrays:
            return self._arrays[name]
        if self.path is None:
            raise KeyError(name)
        npy = self.path / f"{name}.npy"
        if npy.exists():
            arr = np.load(npy, mmap_mode="r")
        else:
            with np.load(self.path / f"{name}.npz") as data:
                arr = data["array"]
        self._arrays[name] = arr
        return arr

    def has(self, name: str) -> bool:
        if name in self._arrays:
            return True
        return self.path is not None and any(
            (self.path / f"{name}{ext}").exists() for ext in (".npy", ".npz")
        )


class SliceCache:
    """Folders of preprocessed arrays under ``root/slices``; disabled means memory only."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True) -> None:
        self.root = (Path(root) if root is not None else cache_root()) / "slices"
        self.enabled = enabled

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, or ``None`` (a damaged entry is dropped)."""
        if not self.enabled:
            return None
        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        entry = CacheEntry(meta, path=folder)
        if not all(entry.has(name) for name in meta.get("arrays", [])):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return entry

    def put(
        self,
        key: str,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping[str, Any],
        compress: Iterable[str] = (),
    ) -> CacheEntry:
        """Store ``arrays`` and ``meta`` under ``key`` and return the stored entry.

        If the cache folder cannot be written the entry is kept in memory with a warning.
        """
        meta = {**meta, "arrays": sorted(arrays)}
        if not self.enabled:
            return CacheEntry(meta, arrays=arrays)
        compress = set(compress)
        try:
            with StagedFolder(self.root, prefix=".tmp-") as stage:
                folder = stage.tmp / key
                folder.mkdir()
                for name, arr in arrays.items():
                    if name in compress:
                        np.savez_compressed(folder / f"{name}.npz", array=arr)
                    else:
                        np.save(folder / f"{name}.npy", np.ascontiguousarray(arr))
                (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
                # A concurrent writer's entry for the same key holds the same arrays.
                stage.commit()
        except (OSError, ConfigError) as exc:
            warnings.warn(
                f"cannot write the preprocessing cache in {self.root} ({exc}); "
                f"set BENCHBOX_CACHE to a writable folder",
                stacklevel=2,
            )
            return CacheEntry(meta, arrays=arrays)
        return self.get(key) or CacheEntry(meta, arrays=arrays)
