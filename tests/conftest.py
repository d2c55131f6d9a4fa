"""Fixtures shared across the test tree (keep this file small)."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# A test run started in the background by a shell without job control (`cmd &`, nohup,
# some CI runners) inherits SIGINT ignored, and then neither `_thread.interrupt_main()`
# nor a SIGINT sent to a child `benchbox` process can act: the Ctrl-C tests would hang.
# Take Python's default Ctrl-C behaviour back, as an interactive run has it (children
# then start with SIGINT at its default too).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def shared_data() -> Callable[..., Path]:
    """``shared_data("aanlib", "CT-MRI")``: a folder of the real images, or a skip.

    The images live in ``$BENCHBOX_DATA`` (default ``../shared/data`` from the repo root,
    see :func:`benchbox.data.paths.data_root`); they are never copied into the repo.
    """
    from benchbox.data.paths import DATA_ENV, data_root

    def need(*parts: str) -> Path:
        path = data_root().joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real images not found: {path} (set {DATA_ENV} to the data folder)")
        return path

    return need


@pytest.fixture
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the preprocessing cache (``BENCHBOX_CACHE``) at a fresh temporary folder."""
    root = tmp_path_factory.mktemp("bbcache")
    monkeypatch.setenv("BENCHBOX_CACHE", str(root))
    return root


class _PickleTrap:
    """Unpickling this calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture
def pickle_trap() -> Callable[[Path], Any]:
    """``pickle_trap(marker)``: an object whose unpickling creates the file ``marker``.

    Put it in a would-be weights file to prove the loader never unpickles it.
    """
    return lambda marker: _PickleTrap(str(marker))


@pytest.fixture
def tta_modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``--tta`` mode of every segmenter forward pass made while the test runs, in
    order (a spy on :func:`benchbox.tta.segment` as the predictor calls it)."""
    from benchbox import predict

    modes: list[str] = []
    segment = predict.segment

    def spy(segmenter: Any, x: Any, mode: str = "none") -> Any:
        modes.append(mode)
        return segment(segmenter, x, mode)

    monkeypatch.setattr(predict, "segment", spy)
    return modes


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``disk_full("checkpoint.pt", "status.json")``: atomic writes of files with these
    names (``"*"``: every file) fail with ``OSError(ENOSPC)`` when their data is synced
    to the disk, as on a full disk; ``disk_full()`` with no name lifts it again."""
    from benchbox import atomic

    names: set[str] = set()
    real_sync = atomic._sync

    def sync(fd: int, tmp: Path) -> None:
        if "*" in names or any(tmp.name.endswith(f"-{name}") for name in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_sync(fd, tmp)

    def full(*files: str) -> None:
        names.clear()
        names.update(files)

    monkeypatch.setattr(atomic, "_sync", sync)
    return full


def _torch_globals(torch: Any) -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "dtype": torch.get_default_dtype(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "grad": torch.is_grad_enabled(),
    }


@pytest.fixture(autouse=True)
def _restore_locale() -> Any:
    """Give back the C library's character locale if a test (or a library it imports)
    changed it: Python decodes subprocess output with it."""
    import locale

    before = locale.setlocale(locale.LC_CTYPE)
    yield
    if locale.setlocale(locale.LC_CTYPE) != before:
        locale.setlocale(locale.LC_CTYPE, before)


@pytest.fixture(autouse=True)
def _restore_torch_globals() -> Any:
    """Give back every process-wide torch setting a test changed, directly or through a
    run (``--deterministic``, threads, default dtype, cuDNN flags, grad mode), so no test
    passes or fails because of the one before it."""
    import torch

    saved = _torch_globals(torch)
    yield
    if _torch_globals(torch) == saved:
        return
    torch.set_num_threads(saved["threads"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.set_default_dtype(saved["dtype"])
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.set_grad_enabled(saved["grad"])
