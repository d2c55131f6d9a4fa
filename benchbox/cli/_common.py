"""What every command shares: the consoles, the one-line error exit, warnings."""

from __future__ import annotations

import os
import warnings
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "console_err", "fail", "print_traceback", "show_plugin_warnings", "warn"]

console = Console()
console_err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line on stderr and exit with ``code``.

    In a process of a distributed run other than rank 0 (``torchrun`` sets ``RANK`` and
    ``WORLD_SIZE``) the line names the rank.
    """
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank and world and rank != "0":
        message = f"rank {rank} of {world}: {message}"
    console_err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise SystemExit(code)


def warn(message: str) -> None:
    """Print one ``warning:`` line on stderr."""
    console_err.print(
        f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False
    )


def print_traceback(text: str) -> None:
    """Print a formatted traceback (``--debug``) on stderr, as is."""
    console_err.print(escape(text.rstrip()), highlight=False, soft_wrap=True)


def show_plugin_warnings() -> None:
    """Render :class:`benchbox.errors.PluginWarning` as one ``warning:`` line on stderr;
    every other warning keeps Python's format."""
    from benchbox.errors import PluginWarning

    default = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, PluginWarning):
            warn(str(message))
        else:
            default(message, category, *args, **kwargs)

    warnings.showwarning = show
