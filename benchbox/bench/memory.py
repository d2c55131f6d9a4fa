"""Peak memory of a phase of work: CUDA's max allocated memory, or the CPU process's
resident high-water mark.

On CUDA ``max_memory_allocated`` after ``reset_peak_memory_stats``; on Linux CPUs the
resident set's high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``);
elsewhere the growth of ``getrusage``'s lifetime ``ru_maxrss``, a lower bound. The
figure is the growth above what the process held when the phase began.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path
from typing import Any

__all__ = ["PeakMemory"]


# -- memory ----------------------------------------------------------------------------
class PeakMemory:
    """Peak memory growth of one phase (see the module docstring for the method)."""

    method = "none"

    def __init__(self, device: Any) -> None:
        self.device = device

    def start(self) -> None:
        import torch

        if self.device.type == "cuda":
            self.method = "cuda max_memory_allocated"
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif _reset_hwm():
            self.method = "VmHWM"
            self._base = _status_kb("VmRSS") * 1024
        else:
            self.method = "ru_maxrss"
            self._base = _maxrss_bytes()

    def peak(self) -> int | None:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device) - self._base)
        if self.device.type != "cpu":
            return None
        now = _status_kb("VmHWM") * 1024 if self.method == "VmHWM" else _maxrss_bytes()
        return max(0, now - self._base)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmHWM") > 0
    except OSError:
        return False


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+)", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _maxrss_bytes() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024  # bytes on macOS, KiB on Linux
