"""Rendering of comparisons: text tables (rich, Markdown, CSV) and the report pages.

:mod:`benchbox.report.tables` turns a :class:`~benchbox.analysis.compare.Comparison` into rows
of strings; :mod:`benchbox.report.figures` draws the plots with matplotlib (Agg);
:mod:`benchbox.report.build` assembles the self-contained HTML or Markdown report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchbox.report.build import Report

__all__ = ["FORMATS", "write_report"]

FORMATS = ("html", "md")


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (:mod:`benchbox.records.atomic`)."""
    from benchbox.records.atomic import write_bytes

    write_bytes(path, data)


def write_report(report: Report, out: str | Path, fmt: str = "html") -> list[Path]:
    """Render ``report`` to ``out`` as ``html`` (one self-contained file) or ``md`` (a
    Markdown file and a ``<stem>_files/`` folder of PNGs). Returns the files written."""
    from benchbox.errors import ConfigError

    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: no such folder for the report")
    if fmt == "html":
        from benchbox.report import html

        _write(out, html.render(report).encode("utf-8"))
        return [out]
    from benchbox.report import markdown

    text, files = markdown.render(report, out)
    folder = out.with_name(f"{out.stem}_files")
    folder.mkdir(exist_ok=True)
    written = []
    for name, data in files.items():
        _write(folder / name, data)
        written.append(folder / name)
    _write(out, text.encode("utf-8"))
    return [out, *written]
