"""Where the real images and the preprocessing cache live, from environment settings.

* ``BENCHBOX_DATA``: the folder of real images (``aanlib/``, ``brats2015/``, ``fixtures/``);
  default ``../shared/data`` next to the repository root.
* ``BENCHBOX_CACHE``: the cache of preprocessed slices; default
  ``$XDG_CACHE_HOME/benchbox`` (``~/.cache/benchbox``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "REPO_ROOT",
    "cache_root",
    "data_root",
    "expand_path",
    "slugify",
]

DATA_ENV = "BENCHBOX_DATA"
CACHE_ENV = "BENCHBOX_CACHE"

#: The repository root when benchbox runs from a source checkout (editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The folder of real images: ``$BENCHBOX_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def cache_root() -> Path:
    """The preprocessing cache: ``$BENCHBOX_CACHE``, else the user's cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "benchbox"


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_path(value: str, base: Path | None = None) -> Path:
    """Expand ``~`` and ``${VAR}`` in a path from a config file, relative to ``base``.

    ``${BENCHBOX_DATA}`` falls back to :func:`data_root` when the variable is unset, so a
    shipped config can name the data folder without knowing where it is.
    """

    def sub(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(2)
        if var == DATA_ENV:
            return str(data_root())
        return os.environ.get(var, match.group(0))

    path = Path(_VAR.sub(sub, value)).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def slugify(*parts: str) -> str:
    """A leaderboard slug from name parts: ``("aanlib", "CT-MRI")`` -> ``aanlib-ct-mri``."""
    text = "-".join(p for p in parts if p)
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return re.sub(r"-{2,}", "-", slug) or "dataset"
