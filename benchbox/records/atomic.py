"""Atomic file writes: the one helper behind every record, leaderboard and score file.

A reader sees either the old file or the complete new one, never a half-written file,
and a failure leaves no temporary file behind. Each write goes to a temporary file in
the target's own folder (a rename is atomic only within one file system), is flushed and
``fsync``-ed, and is renamed over the target; the folder is then synced so the rename
survives a power cut.

The new file keeps the mode of the file it replaces, or gets the default mode of a new
file (``0o666`` minus the umask), unlike :func:`tempfile.mkstemp`'s ``0o600``.

An ``OSError`` while writing (a full disk, a read-only folder, no permission), also when
a library such as ``torch.save`` wraps it in another exception, becomes a
:class:`~benchbox.errors.WriteError` whose message is one line, e.g. ``no space left on
device writing runs/x/checkpoint.pt``. Any other exception, ``KeyboardInterrupt``
included, is re-raised unchanged after the clean-up.

Three entry points share one implementation:

- :func:`write_text` / :func:`write_bytes` for content held in memory;
- :func:`atomic_open` for writers that take a file object (``torch.save``, ``json.dump``),
  with :func:`sync` to make its data safe before committing a second file;
- :func:`atomic_path` for writers that take a file name (SimpleITK); the temporary name
  ends with the target's name, so format detection by extension still works.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchbox.errors import WriteError

__all__ = [
    "StagedFolder",
    "atomic_open",
    "atomic_path",
    "describe_errno",
    "sync",
    "write_bytes",
    "write_error",
    "write_text",
]

_TEMP_PREFIX = ".tmp-"


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")


def _target_mode(path: Path) -> int | None:
    """The mode to give the new file: the replaced file's, or None (keep the umask's)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; not possible on every platform (Windows), so best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError that caused ``exc`` (itself, or one in its cause/context chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe_errno(code: int | None) -> str:
    """``os.strerror`` in lower case, e.g. ``no space left on device`` for ENOSPC."""
    reason = os.strerror(code if code is not None else errno.EIO)
    return reason[:1].lower() + reason[1:]


def write_error(exc: OSError, path: str | Path, verb: str = "writing") -> WriteError:
    """The one-line error for a failed write of ``path``: ``<reason> <verb> <path>``.

    E.g. ``no space left on device writing runs/x/status.json``. A WriteError is
    returned unchanged.
    """
    if isinstance(exc, WriteError):
        return exc
    code = exc.errno or errno.EIO
    return WriteError(f"{describe_errno(code)} {verb} {path}", code, str(path))


def _create_temp(path: Path) -> tuple[Path, int]:
    """Create the temporary file (mode 0o666 minus the umask, applied by the kernel)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


def _sync(fd: int, tmp: Path) -> None:
    """Flush ``tmp``'s data to the disk; where a full disk often shows (delayed allocation)."""
    os.fsync(fd)


def sync(fh: IO[Any]) -> None:
    """Flush a file of :func:`atomic_open` and force its data to the disk now.

    :func:`atomic_open` does this before its rename; call it earlier when a second file
    must only be committed once this one's data is safe (a full disk then fails here,
    before anything is renamed).
    """
    fh.flush()
    _sync(fh.fileno(), Path(fh.name))


def _commit(tmp: Path, path: Path, mode: int | None) -> None:
    """Give ``tmp`` the target's mode and rename it over ``path``."""
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fail(exc: BaseException, path: Path) -> None:
    """Re-raise ``exc`` as a one-line WriteError when an OSError lies behind it."""
    os_error = _os_error(exc)
    if os_error is not None and isinstance(exc, Exception) and not isinstance(exc, WriteError):
        raise write_error(os_error, path) from exc
    raise exc


@contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block ends without error.

    Args:
        path: the file to write; its folder must exist.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding (ignored in binary mode).
        newline: as for :func:`open` (``""`` keeps ``\\n`` as written, e.g. for CSV).

    Raises:
        WriteError: an OSError occurred (disk full, permission...); nothing was changed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    tmp: Path | None = None
    try:
        target_mode = _target_mode(path)
        tmp, fd = _create_temp(path)

        def opener(_name: str, _flags: int) -> int:
            return fd  # already created, with the umask's mode

        try:
            if mode == "wb":
                fh: IO[Any] = open(tmp, "wb", opener=opener)  # noqa: SIM115
            else:
                fh = open(tmp, "w", encoding=encoding, newline=newline, opener=opener)  # noqa: SIM115
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            sync(fh)
        _commit(tmp, path, target_mode)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        _fail(exc, path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path for a writer that takes a file name; renamed over ``path`` on success.

    The temporary name ends with ``path``'s name (``.tmp-<hex>-scan.nii.gz``), so writers
    that pick the format from the extension work. Whatever the writer leaves there is
    removed if the block raises.

    Raises:
        WriteError: an OSError occurred (disk full, permission...); nothing was changed.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        target_mode = _target_mode(path)
        tmp, fd = _create_temp(path)
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            _sync(fd, tmp)
        finally:
            os.close(fd)
        _commit(tmp, path, target_mode)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        _fail(exc, path)


def write_text(
    path: str | Path, text: str, *, encoding: str = "utf-8", newline: str | None = ""
) -> Path:
    """Replace ``path``'s content with ``text`` atomically; ``\\n`` is written as is."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path``'s content with ``data`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


class StagedFolder:
    """Files written into a temporary folder inside ``out`` and moved into ``out`` only
    on :meth:`commit`: a failed or interrupted job leaves nothing half-written there.

    The one home of "stage a folder, then move it into place" (``benchbox export``,
    ``benchbox predict``, the preprocessing cache). Folders in the stage are merged into
    those of ``out`` file by file, each moved with one ``os.replace``; the stage is
    removed on leaving the block, and ``out`` too when it was made here and a failure
    left it empty.

    Raises:
        ConfigError: ``out`` cannot be written (one line naming it).
    """

    def __init__(self, out: str | Path, prefix: str = ".stage-") -> None:
        self.out, self.prefix = Path(out), prefix
        self.made = not self.out.exists()
        self.tmp = Path()

    def __enter__(self) -> StagedFolder:
        from benchbox.errors import ConfigError

        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.out))
        except OSError as exc:
            raise ConfigError(f"{self.out}: cannot write ({exc.strerror})") from None
        return self

    def commit(self) -> list[Path]:
        """Move what the stage holds into ``out``; returns the files moved, in order."""
        return _merge(self.tmp, self.out)

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if exc[0] is not None and self.made:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only if still empty


def _merge(src: Path, dst: Path) -> list[Path]:
    moved = []
    for item in sorted(src.iterdir()):
        if item.name.startswith("."):
            continue
        target = dst / item.name
        if item.is_dir() and target.is_dir():
            moved += _merge(item, target)
        elif item.is_dir():
            os.replace(item, target)
            moved += sorted(p for p in target.rglob("*") if p.is_file())
        else:
            os.replace(item, target)
            moved.append(target)
    return moved
