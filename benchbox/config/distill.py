"""The distillation settings of a run (``--teacher``, ``--distill``, ``--distill-opt``,
``--distill-weight``): their values checked, and the teacher's part of the config hash.

A run with ``--teacher RUN_DIR`` trains against a finished run's models; which run that
is enters the config hash through the teacher's own config hash (read from its
``config.json``), not through its folder's path, so the same experiment hashes alike
wherever the teacher lies. ``--teacher hash:<config hash>`` names the teacher by that
hash instead: the one completed run under ``<out>/runs`` that recorded it
(:func:`teacher_folder`), so a grid file can name a teacher that another grid trains,
whatever run id it gets. What needs the plugins or the teacher's files beyond its hash
(that it finished, its dataset and classes) is checked by
:func:`benchbox.engine.distill.check_teacher`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError

__all__ = [
    "HASH_PREFIX",
    "NO_TEACHER",
    "distill_names",
    "teacher_folder",
    "teacher_hash",
    "validate_distillation",
]

#: Values of ``teacher`` that mean "no teacher" (a grid file cannot write ``null``).
NO_TEACHER = ("", "none")
#: ``--teacher hash:<config hash>``: the completed run under ``<out>/runs`` with that hash.
HASH_PREFIX = "hash:"


def distill_names(value: Any, source: str) -> list[str]:
    """``distill`` as a list of distiller names: a list, or text such as
    ``"logits,cwd"``; ``"none"`` is none. Duplicates are dropped."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ConfigError(f"{source}: distill must be a list of distiller names")
    names = [n.strip() for item in value for n in item.split(",")]
    return list(dict.fromkeys(n for n in names if n and n != "none"))


def validate_distillation(
    teacher: str | None, distill: list[str], opts: Mapping[str, Any], weight: float
) -> None:
    """Check the distillation settings that need no plugin and no file.

    Raises:
        ConfigError: ``--distill`` without ``--teacher`` (or the reverse), a
            ``--distill-opt`` for a distiller that is not used, or a weight that is not
            a finite number above 0.
    """
    if distill and not teacher:
        raise ConfigError(
            f"--distill {','.join(distill)} needs --teacher RUN_DIR, the finished run to "
            "distill from"
        )
    if teacher and not distill:
        raise ConfigError(
            f"--teacher {teacher} needs at least one --distill NAME (e.g. logits); "
            "`benchbox plugins --kind distiller` lists them"
        )
    for name, table in opts.items():
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"--distill-opt takes NAME.KEY=VALUE (logits.temperature=4), got {name!r}"
            )
        if name not in distill:
            raise ConfigError(
                f"--distill-opt {name}.* given, but {name!r} is not distilled "
                f"(--distill {name}); distilled: {', '.join(distill) or 'none'}"
            )
    if not (math.isfinite(weight) and weight > 0):
        raise ConfigError(f"distill_weight must be a finite number > 0, got {weight}")


def teacher_hash(teacher: str) -> str:
    """The teacher's config hash: given (``hash:...``), or as the teacher run recorded it
    in its ``config.json``.

    Raises:
        ConfigError: the folder has no readable ``config.json`` with a ``config_hash``.
    """
    if teacher.startswith(HASH_PREFIX):
        return teacher[len(HASH_PREFIX) :]
    path = Path(teacher).expanduser() / "config.json"
    recorded = _recorded_hash(path)
    if recorded is None:
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not JSON"
            raise ConfigError(f"--teacher {teacher}: no readable {path.name} ({reason})") from None
        raise ConfigError(f"--teacher {teacher}: {path.name} records no config_hash")
    return recorded


def teacher_folder(teacher: str, out: str | Path) -> Path:
    """The teacher's run folder: ``teacher`` itself, or for ``hash:<config hash>`` the one
    completed run under ``<out>/runs`` whose ``config.json`` records that hash.

    Raises:
        ConfigError: no completed run has the hash, or several do (name the folder then).
    """
    if not teacher.startswith(HASH_PREFIX):
        return Path(teacher).expanduser()
    wanted = teacher[len(HASH_PREFIX) :]
    runs = Path(out).expanduser() / "runs"
    found = [
        file.parent
        for file in sorted(runs.glob("*/config.json"))
        if _recorded_hash(file) == wanted and _status(file.parent) == "completed"
    ]
    if not found:
        raise ConfigError(
            f"--teacher {teacher}: no completed run in {runs} has config hash {wanted}"
        )
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise ConfigError(
            f"--teacher {teacher}: {len(found)} completed runs in {runs} have that config hash "
            f"({names}); give the run folder instead"
        )
    return found[0]


def _recorded_hash(file: Path) -> str | None:
    try:
        value = json.loads(file.read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _status(run: Path) -> str | None:
    try:
        value = json.loads((run / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None
