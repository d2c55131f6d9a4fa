"""The distillation settings of a run (``--teacher``, ``--distill``, ``--distill-opt``,
``--distill-weight``): their values checked, and the teacher's part of the config hash.

A run with ``--teacher RUN_DIR`` trains against a finished run's models; which run that
is enters the config hash through the teacher's own config hash (read from its
``config.json``), not through its folder's path, so the same experiment hashes alike
wherever the teacher lies. What needs the plugins or the teacher's files beyond its hash
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

__all__ = ["NO_TEACHER", "distill_names", "teacher_hash", "validate_distillation"]

#: Values of ``teacher`` that mean "no teacher" (a grid file cannot write ``null``).
NO_TEACHER = ("", "none")


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
    """The config hash that the teacher run recorded in its ``config.json``.

    Raises:
        ConfigError: the folder has no readable ``config.json`` with a ``config_hash``.
    """
    path = Path(teacher).expanduser() / "config.json"
    try:
        value = json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not JSON"
        raise ConfigError(f"--teacher {teacher}: no readable {path.name} ({reason})") from None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"--teacher {teacher}: {path.name} records no config_hash")
    return value
