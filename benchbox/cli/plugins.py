"""``benchbox plugins``: what is installed, who provides it, and what failed to load."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err, fail, print_traceback
from benchbox.hooks.registry import KINDS


def plugins(
    pattern: str = typer.Argument("*", help="Glob pattern on component names, e.g. 'smp-*'."),
    kind: str | None = typer.Option(None, "--kind", "-k", help=f"One of: {', '.join(KINDS)}."),
    params: bool = typer.Option(False, "--params", "-p", help="Show each factory's parameters."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail if any plugin failed to load or two share a name."
    ),
) -> None:
    """List the registered components, their providers, and plugins that failed to load."""
    from benchbox.hooks.manager import create_registry, debug_enabled, set_registry
    from benchbox.hooks.registry import check_kind

    kinds = [check_kind(kind)] if kind else list(KINDS)
    registry = create_registry(strict=strict)
    set_registry(registry)
    clashes = {(e.kind, e.name) for entries in registry.duplicates() for e in entries}

    table = Table(title="benchbox plugins", title_justify="left")
    for column in ("kind", "name", "provider", "version", "description"):
        table.add_column(column, overflow="fold")
    if params:
        table.add_column("parameters", overflow="fold")
    rows = 0
    for k in kinds:
        for entry in registry.list(k, pattern):
            dist = entry.provider.distribution or entry.provider.plugin
            name = escape(entry.name)
            if (k, entry.name) in clashes:
                name = f"[bold red]{name} (duplicate)[/]"
            row = [k, name, escape(dist), escape(entry.provider.version or "")]
            row.append(escape(entry.description))
            if params:
                row.append(escape(", ".join(str(p) for p in entry.parameters)))
            table.add_row(*row)
            rows += 1
    if rows:
        console.print(table)

    for entries in registry.duplicates():
        if entries[0].kind in kinds:
            from benchbox.hooks.registry import duplicate_error

            message = f"{duplicate_error(entries)}; runs that use another name work"
            console_err.print(f"[bold red]conflict:[/] {escape(message)}", soft_wrap=True)
    for err in registry.load_errors:
        if debug_enabled() and err.details:
            print_traceback(err.details)
        console_err.print(
            f"[bold red]failed to load[/] {escape(str(err.provider))}: {escape(err.error)}",
            soft_wrap=True,
            highlight=False,
        )
    for provider in registry.disabled:
        console_err.print(f"[dim]disabled {escape(str(provider))}[/]", highlight=False)
    if not rows:
        fail(f"no {kind or 'component'} matches {pattern!r}")
