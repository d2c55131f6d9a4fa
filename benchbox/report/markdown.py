"""The report as a Markdown page with its figures as PNG files in a folder beside it."""

from __future__ import annotations

from pathlib import Path

from benchbox.report import figures, tables
from benchbox.report.build import Report, Section

__all__ = ["render"]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


def _section(section: Section, link: str, files: dict[str, bytes]) -> list[str]:
    lines = [f"## {section.dataset}", "", f"`{section.path}`", ""]
    lines += [f"> **note:** {n}" for n in section.notes]
    if section.notes:
        lines.append("")
    base = _slug(section.dataset)

    def image(name: str, png: bytes, alt: str) -> str:
        files[name] = png
        return f"![{alt}]({link}/{name})"

    if section.table is not None and not section.comparisons:
        lines += ["### Leaderboard", "", tables.markdown(*section.table), ""]
    if section.table is not None and section.comparisons:
        first = section.comparisons[0]
        lines += ["### Leaderboard", "", tables.markdown(*section.table), ""]
        lines += [
            "Mean over cases of the seed-averaged per-case scores, [95% percentile bootstrap "
            f"CI over cases, {first.resamples} resamples]; rows in rank order of "
            f"{first.metric}.",
            "",
        ]
    for c in section.comparisons:
        arrow = "↑" if c.higher_is_better else "↓"
        slug = f"{base}-{_slug(c.metric)}"
        lines += [f"### {c.metric} {arrow}", "", tables.markdown(*tables.methods_table(c)), ""]
        lines += ["Paired differences:", "", tables.markdown(*tables.pairs_table(c)), ""]
        lines += [tables.summary_line(c), ""]
        pics = [
            image(f"{slug}-cases.png", figures.to_png(figures.per_case(c)), "per-case scores"),
            image(f"{slug}-ranks.png", figures.to_png(figures.blob(c)), "bootstrap ranks"),
        ]
        if len(c.methods) > 1:
            pics.append(
                image(
                    f"{slug}-significance.png",
                    figures.to_png(figures.significance(c)),
                    "significance map",
                )
            )
        lines += [" ".join(pics), ""]
        lines += [
            "Per-case scores; bootstrap ranks (blob area = share of resamples, x = median, "
            "bar = 95% interval); significance map (green: the row's method is significantly "
            "better than the column's, purple: worse, grey: no significant difference).",
            "",
        ]
    if section.cost is not None:
        fig = figures.cost(section.cost["points"], section.cost["metric"], section.cost["higher"])
        lines += [
            "### Quality against cost",
            "",
            image(f"{base}-cost.png", figures.to_png(fig), "cost"),
        ]
        lines.append("")
    if section.examples:
        lines += ["### Examples", ""]
        for method, (run_id, png) in section.examples.items():
            name = f"{base}-examples-{_slug(method)}.png"
            lines += [f"**{method}** (run `{run_id}`)", "", image(name, png, method), ""]
    lines += ["### Provenance", ""]
    for key, value in section.provenance.items():
        if value not in ([], None, ""):
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            lines.append(f"- {key}: `{text}`")
    if section.commands:
        lines += ["", "Commands (from the leaderboard columns):", "", "```"]
        for label, cmd in section.commands:
            lines += [f"# {label}", cmd]
        lines.append("```")
    lines.append("")
    return lines


def render(report: Report, out: Path) -> tuple[str, dict[str, bytes]]:
    """The Markdown text for ``out`` and the PNG files (name -> bytes) of the folder
    ``<out stem>_files`` beside it, which the text links to."""
    folder = out.with_name(f"{out.stem}_files")
    files: dict[str, bytes] = {}
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    lines = [
        f"# {report.title}",
        "",
        f"Generated {report.generated} with {versions}. Command: `{report.command}`",
        "",
        "Methods are compared case by case: per-case scores are averaged over each "
        "method's seeds and paired by case. Intervals: 95% percentile bootstrap over cases "
        f"({report.resamples} resamples, seed {report.seed}); p-values: two-sided Wilcoxon "
        "signed-rank, zero differences dropped, Holm-adjusted.",
        "",
    ]
    for section in report.sections:
        lines += _section(section, folder.name, files)
    return "\n".join(lines), files
