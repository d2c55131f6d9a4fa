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
from collections.abc import Mapping
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
    "checkpoint_error",
    "checkpoint_reason",
    "environment",
    "load_checkpoint",
    "native_threads",
    "new_run_id",
    "save_checkpoint",
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
        "native_threads": native_threads(),
        "amp": dict(amp),
    }


def native_threads() -> dict[str, int]:
    """The native thread pools loaded in this process and their sizes, by kind
    (``openmp``, ``openblas``, ``mkl``, ...; the largest where a kind is loaded twice,
    as NumPy and SciPy each bring an OpenBLAS), as threadpoolctl finds them. They
    decide how a BLAS call divides its sums, so they belong to a run's record."""
    from threadpoolctl import threadpool_info

    pools: dict[str, int] = {}
    for info in threadpool_info():
        kind = str(info.get("internal_api"))
        pools[kind] = max(pools.get(kind, 0), int(info.get("num_threads") or 0))
    return dict(sorted(pools.items()))


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


def checkpoint_reason(path: Path, exc: BaseException) -> str:
    """Why a checkpoint ``torch.load(weights_only=True)`` refused or could not read
    ``path`` is not one, in one line: torch's own text (several lines, advising to
    switch the safety off) is not passed on."""
    import re

    text = str(exc)
    size = path.stat().st_size if path.is_file() else None
    if size == 0:
        return "an empty file (0 bytes), not a checkpoint"
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"refused, loading it would call {found.group(1)}, which is not weights "
            "(benchbox never runs code from a checkpoint; this file was not written by "
            "benchbox run, or was altered)"
        )
    # torch wraps its reason in advice to load with weights_only=False: left out.
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    kept = [ln for ln in lines if not ln.startswith(boilerplate)]
    first = kept[0].split(". ")[0].rstrip(".") if kept else ""
    reason = f"{type(exc).__name__}: {first[:100]}" if first else type(exc).__name__
    return f"not a readable checkpoint, truncated or not written by benchbox run ({reason})"


def checkpoint_error(path: Path, exc: BaseException) -> ConfigError:
    """One line for a checkpoint that ``torch.load(weights_only=True)`` refused or could
    not read (:func:`checkpoint_reason`)."""
    return ConfigError(f"{path}: {checkpoint_reason(path, exc)}")
