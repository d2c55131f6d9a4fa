"""Presets: shipped TOML files of run settings with a ``preset`` key (``--preset quick``)."""

from __future__ import annotations

import difflib
from pathlib import Path

from benchbox.config.files import read_toml, shipped, shipped_files
from benchbox.errors import ConfigError

__all__ = ["preset_names", "preset_path"]


def preset_names() -> list[str]:
    """The names of the shipped presets."""
    return [p.stem for p in shipped_files() if _is_preset(p)]


def preset_path(name: str) -> Path:
    """The TOML file of a preset; an unknown name is a :class:`ConfigError` with the
    closest preset's name."""
    path = shipped(name)
    if path is not None and _is_preset(path):
        return path
    available = preset_names()
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown preset {name!r}{hint} (presets: {', '.join(available)})")


def _is_preset(path: Path) -> bool:
    try:
        return bool(read_toml(path).get("preset"))
    except ConfigError:
        return False
