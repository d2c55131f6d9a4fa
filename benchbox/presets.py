"""Where presets live, and reading TOML config files with one clear error each.

A preset (``--preset quick``) is a TOML file of run settings with a ``preset`` key, in
the repository's ``configs/`` folder (installed as ``benchbox/configs`` by the wheel).
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def preset_path(name: str) -> Path:
    """The TOML file of a preset.

    Presets live in the repository's ``configs/`` folder, which the wheel installs as
    ``benchbox/configs``; an editable install reads them from the source tree.
    """
    here = Path(__file__).resolve().parent
    for folder in (here / "configs", here.parent / "configs"):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    available = sorted(
        {
            p.stem
            for folder in (here / "configs", here.parent / "configs")
            if folder.is_dir()
            for p in folder.glob("*.toml")
            if _is_preset(p)
        }
    )
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown preset {name!r}{hint} (presets: {', '.join(available)})")


def _is_preset(path: Path) -> bool:
    try:
        return bool(tomllib.loads(path.read_text()).get("preset"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a missing or malformed file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
