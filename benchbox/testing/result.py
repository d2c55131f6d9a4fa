"""What a contract check says about one component: pass, fail or skip, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CheckResult", "ContractError", "Status", "Unavailable"]

Status = Literal["pass", "fail", "skip"]


class ContractError(Exception):
    """A component broke its contract; the message says what broke, in one line."""


class Unavailable(Exception):
    """A component cannot be checked here: it needs data, a library or a parameter that
    the kit cannot supply (the message says which)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of the contract check of one component.

    Attributes:
        kind: the component kind (``segmenter``), or ``plugin`` for a plugin of the
            distribution that failed to load or was disabled.
        name: the component's name (the plugin's name for ``plugin``).
        status: ``pass``, ``fail`` or ``skip``.
        reason: one line naming the component and what broke, or why it was skipped;
            for a pass, what was left unchecked (empty if nothing).
        slow: the component is registered with ``slow=True``.
        seconds: how long the check took.
    """

    kind: str
    name: str
    status: Status
    reason: str = ""
    slow: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def line(self) -> str:
        """The result as one line: ``pass segmenter 'unet' (0.31 s)``, or the status
        and the reason."""
        slow = " [slow]" if self.slow else ""
        if self.status == "pass":
            note = f"; {self.reason}" if self.reason else ""
            return f"pass {self.kind} {self.name!r}{slow} ({self.seconds:.2f} s){note}"
        return f"{self.status} {self.reason}{slow}"
