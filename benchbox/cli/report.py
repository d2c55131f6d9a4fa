"""``benchbox report LEADERBOARD... -o report.html``: a self-contained comparison report."""

from __future__ import annotations

import typer
from rich.markup import escape

from benchbox.cli._common import console, warn

__all__ = ["report"]


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
    from pathlib import Path

    from benchbox.errors import ConfigError

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("benchbox report draws with matplotlib: pip install 'benchbox[report]'")
    from benchbox.report import write_report
    from benchbox.report.build import build_report

    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    words = ["benchbox", "report", *paths, "-o", out]
    for flag, value, default in (
        ("--format", fmt, None),
        ("--by", by, "fusion,segmenter"),
        ("--resamples", resamples, 2000),
        ("--seed", seed, 0),
        ("--title", title, "benchbox report"),
    ):
        if value != default:
            words += [flag, str(value)]
    for flag, values in (("-m", metric or []), ("--runs", runs or [])):
        for value in values:
            words += [flag, value]
    command = shlex.join(words)
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
            warn(f"{section.dataset}: {note}")
    chosen = fmt or ("md" if Path(out).suffix.lower() in (".md", ".markdown") else "html")
    written = write_report(result, out, chosen)
    extra = f" and {len(written) - 1} figure(s)" if len(written) > 1 else ""
    console.print(f"wrote {escape(str(written[0]))}{extra}", highlight=False)
