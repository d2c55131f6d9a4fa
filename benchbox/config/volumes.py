"""The text form of the 3D run settings: ``--patch-size 64,96,96`` and ``--spacing 1,1,1``.

Both are written in array order ``(D, H, W)``, i.e. ``(z, y, x)`` of the canonical
orientation every volume is turned to (:class:`benchbox.data.preprocess.Orientation`):
depth first, as nnU-Net writes its patch sizes and spacings.
"""

from __future__ import annotations

import math

from benchbox.errors import ConfigError

__all__ = ["format_triple", "parse_triple"]


def parse_triple(text: str, option: str, integer: bool) -> tuple[float, ...] | None:
    """``"64,96,96"`` -> ``(64, 96, 96)``; an empty text -> ``None`` (not set).

    Args:
        text: the setting's value.
        option: the option's name for the message (``--patch-size``).
        integer: require whole numbers (voxels) rather than mm.

    Raises:
        ConfigError: not three finite numbers > 0 (whole numbers if ``integer``).
    """
    text = str(text).strip()
    if not text:
        return None
    what = "three whole numbers >= 1 (voxels)" if integer else "three numbers > 0 (mm)"
    bad = ConfigError(f"{option} must be {what} as D,H,W (z,y,x), got {text!r}")
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if len(parts) != 3:
        raise bad
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise bad from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise bad
    if integer:
        if not all(v.is_integer() for v in values):
            raise bad
        return tuple(int(v) for v in values)
    return tuple(values)


def format_triple(values: tuple[float, ...] | None) -> str:
    """``(64, 96, 96)`` -> ``"64x96x96"`` (a leaderboard cell); ``None`` -> ``""``."""
    if not values:
        return ""
    return "x".join(f"{v:g}" for v in values)
