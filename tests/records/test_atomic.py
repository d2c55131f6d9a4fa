"""The one atomic-write helper: content, file mode, umask, and clean failure."""

from __future__ import annotations

import errno
import os
import stat
import sys

import pytest

from benchbox.errors import BenchboxError, WriteError
from benchbox.records import atomic

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_text_bytes_and_file_object_writers(tmp_path):
    text = tmp_path / "a.csv"
    atomic.write_text(text, "x,y\n1,2\n")
    assert text.read_bytes() == b"x,y\n1,2\n"  # "\n" kept as written, on every platform
    raw = tmp_path / "b.bin"
    atomic.write_bytes(raw, b"\x00\x01")
    assert raw.read_bytes() == b"\x00\x01"
    with atomic.atomic_open(raw, "wb") as fh:
        fh.write(b"new")
    assert raw.read_bytes() == b"new"
    with atomic.atomic_path(tmp_path / "scan.nii.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("-scan.nii.gz")
        tmp.write_bytes(b"by name")
    assert (tmp_path / "scan.nii.gz").read_bytes() == b"by name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.bin", "scan.nii.gz"]


@posix_only
def test_new_file_gets_the_umask_default_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.json", "{}")
        os.umask(0o027)
        atomic.write_text(tmp_path / "b.json", "{}")
        with atomic.atomic_path(tmp_path / "c.png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.json") == 0o644
    assert _mode(tmp_path / "b.json") == 0o640
    assert _mode(tmp_path / "c.png") == 0o640  # created under umask 027


@posix_only
def test_replacing_keeps_the_existing_mode(tmp_path, umask_022):
    for mode in (0o600, 0o664, 0o640):
        path = tmp_path / f"board-{mode:o}.csv"
        path.write_text("old\n")
        os.chmod(path, mode)
        atomic.write_text(path, "new\n")
        assert path.read_text() == "new\n" and _mode(path) == mode
        with atomic.atomic_open(path, "wb") as fh:
            fh.write(b"again\n")
        assert _mode(path) == mode


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_leaves_the_original_and_no_temporary_file(tmp_path, monkeypatch, where):
    path = tmp_path / "status.json"
    path.write_text('{"status": "running"}\n')
    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", _enospc)
        writer = atomic.write_text
    else:

        def writer(p, text):
            with atomic.atomic_open(p) as fh:
                fh.write(text[:3])
                _enospc()

    with pytest.raises(WriteError) as info:
        writer(path, '{"status": "failed"}\n')
    assert str(info.value) == f"no space left on device writing {path}"
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert isinstance(info.value, OSError) and isinstance(info.value, BenchboxError)
    assert path.read_text() == '{"status": "running"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_an_oserror_wrapped_by_a_library_is_found(tmp_path):
    """torch.save turns a failed write into a RuntimeError; the ENOSPC behind it counts."""
    import torch

    path = tmp_path / "checkpoint.pt"

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            _enospc()

        def flush(self):
            pass

    with (
        pytest.raises(WriteError, match=r"no space left on device writing .*checkpoint\.pt"),
        atomic.atomic_open(path, "wb") as fh,
    ):
        torch.save({"w": torch.zeros(1000)}, Full(fh))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError])
def test_other_exceptions_pass_unchanged_after_clean_up(tmp_path, exc):
    path = tmp_path / "board.csv"
    path.write_text("kept\n")
    with pytest.raises(exc), atomic.atomic_open(path) as fh:
        fh.write("half a row")
        raise exc
    with pytest.raises(exc), atomic.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise exc
    assert path.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["board.csv"]


def test_interrupt_at_the_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    path.write_text("old")

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_missing_folder_and_other_errors_are_named(tmp_path):
    with pytest.raises(WriteError, match=r"no such file or directory writing .*nowhere"):
        atomic.write_text(tmp_path / "nowhere" / "a.json", "{}")
    err = atomic.write_error(OSError(errno.EACCES, "Permission denied"), "x.csv")
    assert str(err) == "permission denied writing x.csv"
    assert atomic.write_error(err, "other") is err


def test_write_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(WriteError("no space left on device writing a", 28, "a")))
    assert str(err) == "no space left on device writing a" and err.errno == 28
