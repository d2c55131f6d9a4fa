"""``benchbox report LEADERBOARD... -o report.html``: a self-contained comparison report."""

from __future__ import annotations

import typer
from rich.markup import escape

from benchbox.cli._common import console, console_err


def report(
    paths: list[str] = typer.Argument(..., help="Leaderboard CSVs, with .cases.csv beside them."),
    out: str = typer.Option("report.html", "--out", "-o", help="The report file to write."),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="html or md (default: from the --out suffix)."
    ),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Per-case metric or glob (repeatable); default: the usual."
    ),
    by: str = typer.Option("fusion,segmenter", "--by", help="Columns that define a method."),
    runs: list[str] | None = typer.Option(
        None, "--runs", help="Extra folder of run folders, for example figures (repeatable)."
    ),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples of the cases."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples."),
    title: str = typer.Option("benchbox report", "--title", help="The page title."),
) -> None:
    """Write an HTML (or Markdown) report: leaderboard with CIs, per-case plots, rank
    stability, significance maps, quality vs cost, examples and provenance."""
    import importlib.util
    import shlex
    import sys
    from pathlib import Path

    from benchbox.errors import ConfigError

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("benchbox report draws with matplotlib: pip install 'benchbox[report]'")
    from benchbox.report import write_report
    from benchbox.report.build import build_report

    fmt = fmt or ("md" if Path(out).suffix.lower() in (".md", ".markdown") else "html")
    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    command = "benchbox " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "benchbox report"
    result = build_report(
        paths,
        metrics=metric or None,
        by=[c.strip() for c in by.split(",") if c.strip()],
        runs_dirs=runs or (),
        resamples=resamples,
        seed=seed,
        command=command,
        title=title,
    )
    for section in result.sections:
        for note in section.notes:
            console_err.print(
                f"[yellow]warning:[/] {escape(section.dataset)}: {escape(note)}", soft_wrap=True
            )
    written = write_report(result, out, fmt)
    extra = f" and {len(written) - 1} figure(s)" if len(written) > 1 else ""
    console.print(f"wrote {escape(str(written[0]))}{extra}", highlight=False)
