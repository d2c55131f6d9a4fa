"""What every command shares: the consoles and the one-line error exit."""

from __future__ import annotations

from typing import NoReturn

from rich.console import Console
from rich.markup import escape

console = Console()
console_err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line on stderr and exit with ``code``."""
    console_err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise SystemExit(code)
