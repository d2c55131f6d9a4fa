"""What benchbox ships to plugin authors for their tests."""

from __future__ import annotations

from benchbox.testing.tiny import tiny_run_settings

__all__ = ["tiny_run_settings"]
