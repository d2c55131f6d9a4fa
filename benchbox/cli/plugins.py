"""``benchbox plugins``: what is installed, who provides it, and what failed to load;
``--check DIST`` checks a distribution's components against their contracts."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err, fail, print_traceback
from benchbox.hooks.registry import KINDS

__all__ = ["plugins"]


def plugins(
    pattern: str = typer.Argument("*", help="Glob pattern on component names, e.g. 'smp-*'."),
    kind: str | None = typer.Option(None, "--kind", "-k", help=f"One of: {', '.join(KINDS)}."),
    params: bool = typer.Option(False, "--params", "-p", help="Show each factory's parameters."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail if any plugin failed to load or two share a name."
    ),
    check: str | None = typer.Option(
        None,
        "--check",
        metavar="DIST",
        help="Check every component of the installed distribution DIST (e.g. benchbox) "
        "against its contract on tiny CPU inputs: one line each, exit 1 on any failure.",
    ),
) -> None:
    """List the registered components, their providers, and plugins that failed to load."""
    from benchbox.hooks.manager import create_registry, debug_enabled, set_registry
    from benchbox.hooks.registry import check_kind

    if check is not None:
        _check(check, kind, pattern)
        return
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


_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}
_WORDS = {"pass": "passed", "fail": "failed", "skip": "skipped"}


def _check(distribution: str, kind: str | None, pattern: str) -> None:
    """Run the contract checks of ``distribution``, printing each result as it ends."""
    import time

    from benchbox import testing

    start = time.perf_counter()
    distribution = testing.find_distribution(distribution)
    checks = testing.plan(distribution, kind=kind, pattern=pattern)
    if not checks:
        fail(f"{distribution} registers no {kind or 'component'} matching {pattern!r}")
    counts = dict.fromkeys(_STYLE, 0)
    for planned in checks:
        result = planned.run()
        counts[result.status] += 1
        status, _, rest = result.line.partition(" ")
        console.print(
            f"[{_STYLE[result.status]}]{status}[/] {escape(rest)}", soft_wrap=True, highlight=False
        )
    summary = ", ".join(f"{counts[s]} {word}" for s, word in _WORDS.items() if counts[s])
    console.print(
        f"{escape(distribution)}: {len(checks)} checked, {summary} "
        f"in {time.perf_counter() - start:.1f} s",
        highlight=False,
    )
    if counts["fail"]:
        raise typer.Exit(1)
