"""Reading TOML config files, and finding the ones benchbox ships.

The shipped files (presets such as ``quick.toml``, dataset configs such as
``brats2015.toml``) live in the repository's ``configs/`` folder, which is installed as
the resource package ``benchbox.configs``; they are found through
:mod:`importlib.resources` in a built wheel and in an editable checkout alike, never
through the repository's location.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["read_toml", "shipped", "shipped_files"]


def shipped_files() -> list[Path]:
    """Every TOML file shipped in ``benchbox.configs``, sorted by name."""
    folder = resources.files("benchbox.configs")
    return sorted(
        (Path(str(f)) for f in folder.iterdir() if f.name.endswith(".toml")),
        key=lambda p: p.name,
    )


def shipped(name: str) -> Path | None:
    """The shipped file ``<name>.toml`` (``name`` may carry the suffix), or ``None``."""
    stem = name.removesuffix(".toml")
    return next((p for p in shipped_files() if p.stem == stem), None)


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
