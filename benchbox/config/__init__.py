"""Run settings: each declared once (:mod:`.settings`), the run config built from
defaults, presets, config files and options (:mod:`.run`, :mod:`.layers`), and where
presets and shipped files live (:mod:`.presets`, :mod:`.files`).

``resolve``, ``apply`` and ``RunConfig`` are the calls most code needs, so they are
importable from here.
"""

from __future__ import annotations

from benchbox.config.layers import apply, resolve
from benchbox.config.run import AMP_MODES, NONE, Amp, RunConfig

__all__ = ["AMP_MODES", "NONE", "Amp", "RunConfig", "apply", "resolve"]
