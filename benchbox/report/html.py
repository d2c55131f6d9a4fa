"""The report as one self-contained HTML file: inline CSS, figures as inline SVG, example
images as base64 PNG. No script, no font, no stylesheet or image is fetched: the page
opens offline and makes no network request."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from benchbox.report import figures, tables
from benchbox.report.build import Report, Section

__all__ = ["CSS", "render", "table_html"]

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c5cad6; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 32px 48px; }
nav { font-size: 13px; margin: 8px 0 16px; }
nav a { margin-right: 14px; }
a { color: var(--accent); text-decoration: none; }
section.board { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                padding: 8px 24px 20px; margin: 20px 0; }
h2 { font-size: 19px; margin: 16px 0 4px; }
h3 { font-size: 16px; margin: 24px 0 6px; border-top: 1px solid var(--line);
     padding-top: 14px; }
h4 { font-size: 14px; margin: 14px 0 4px; color: var(--muted); }
.path { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; }
td.l, th.l { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.best td { font-weight: 600; }
.scroll { overflow-x: auto; }
.note { background: #fff8e5; border-left: 3px solid #e6a700; padding: 6px 10px;
        margin: 6px 0; font-size: 13px; }
.caption { color: var(--muted); font-size: 12px; max-width: 900px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figs figure { margin: 0; flex: 1 1 340px; max-width: 560px; }
.figs figure.wide { flex-basis: 100%; max-width: 760px; }
figure svg, figure img { width: 100%; height: auto; display: block; }
.examples figure { flex: 1 1 100%; max-width: 760px; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { background: #f3f4f7; padding: 8px 10px; border-radius: 6px; overflow-x: auto; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 13px; }
dt { color: var(--muted); }
dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, best: int | None = 0
) -> str:
    """A table; the first ``left`` columns left-aligned, row ``best`` emphasised."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} class="l">{_e(v)}</{tag}>' if i < left else f"<{tag}>{_e(v)}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(
        f'<tr class="best">{cells("td", r)}</tr>' if i == best else f"<tr>{cells('td', r)}</tr>"
        for i, r in enumerate(rows)
    )
    return (
        f'<div class="scroll"><table><thead><tr>{cells("th", header)}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(svg: str, caption: str, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return f"<figure{cls}>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _anchor(section: Section) -> str:
    return "ds-" + "".join(ch if ch.isalnum() else "-" for ch in section.dataset)


def _section(section: Section) -> str:
    parts = [
        f'<section class="board" id="{_anchor(section)}">',
        f"<h2>{_e(section.dataset)}</h2>",
        f'<div class="path">{_e(section.path)}</div>',
    ]
    parts += [f'<div class="note">{_e(n)}</div>' for n in section.notes]
    if section.table is not None and not section.comparisons:
        parts.append("<h3>Leaderboard</h3>")
        parts.append(table_html(*section.table, left=1, best=None))
    if section.table is not None and section.comparisons:
        first = section.comparisons[0]
        parts.append("<h3>Leaderboard</h3>")
        parts.append(table_html(*section.table, left=1))
        parts.append(
            '<p class="caption">Mean over cases of the seed-averaged per-case scores, '
            f"[95% percentile bootstrap CI over cases, {first.resamples} resamples]; rows "
            f"in rank order of {_e(first.metric)}. Seeds: runs per method. Inference speed "
            "and parameters: mean over the method's runs.</p>"
        )
    for c in section.comparisons:
        parts.append(f"<h3>{_e(c.metric)} {'↑' if c.higher_is_better else '↓'}</h3>")
        parts.append(table_html(*tables.methods_table(c), left=2))
        parts.append("<h4>Paired differences</h4>")
        parts.append(table_html(*tables.pairs_table(c), left=2, best=None))
        parts.append(f'<p class="caption">{_e(tables.summary_line(c))}</p>')
        parts.append('<div class="figs">')
        parts.append(
            _figure(figures.to_svg(figures.per_case(c)), "Per-case scores of each method.")
        )
        parts.append(
            _figure(
                figures.to_svg(figures.blob(c)),
                "Bootstrap ranks: blob area = share of resamples with that rank; "
                "x = median, bar = 95% interval.",
            )
        )
        if len(c.methods) > 1:
            parts.append(
                _figure(
                    figures.to_svg(figures.significance(c)),
                    "Significance map: green, the row's method is significantly better than "
                    "the column's; purple, significantly worse; grey, no significant "
                    "difference (two-sided Wilcoxon signed-rank, Holm over all pairs).",
                )
            )
        parts.append("</div>")
    if section.cost is not None:
        parts.append("<h3>Quality against cost</h3>")
        fig = figures.cost(section.cost["points"], section.cost["metric"], section.cost["higher"])
        parts.append('<div class="figs">')
        parts.append(
            _figure(
                figures.to_svg(fig),
                "Inference images/s and parameters as recorded in the leaderboard "
                "(mean over the method's runs; the machines may differ, see provenance).",
                wide=True,
            )
        )
        parts.append("</div>")
    parts.append("<h3>Examples</h3>")
    if section.examples:
        parts.append('<div class="figs examples">')
        for method, (run_id, png) in section.examples.items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img alt="examples of {_e(method)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{_e(method)}: run '
                f"{_e(run_id)}</figcaption></figure>"
            )
        parts.append("</div>")
    else:
        parts.append(
            '<p class="caption">No example figures: the runs/ folders of this leaderboard '
            "were not found (pass --runs DIR).</p>"
        )
    parts.append(_provenance(section))
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(section: Section) -> str:
    items = "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(', '.join(map(str, v)) if isinstance(v, list) else v)}</dd>"
        for k, v in section.provenance.items()
        if v not in ([], None, "")
    )
    commands = "\n".join(f"# {label}\n{cmd}" for label, cmd in section.commands)
    out = f"<h3>Provenance</h3><dl>{items}</dl>"
    if commands:
        out += (
            "<h4>Commands (from the leaderboard columns; plugin options are in each run's "
            f"config.json, identified by its config hash)</h4><pre>{_e(commands)}</pre>"
        )
    return out


def render(report: Report) -> str:
    """The report as a complete HTML document."""
    nav = "".join(f'<a href="#{_anchor(s)}">{_e(s.dataset)}</a>' for s in report.sections)
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    body = "\n".join(_section(s) for s in report.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{_e(report.title)}</h1>
<p>Generated {_e(report.generated)} with {_e(versions)}.</p></header>
<main>
<nav>{nav}</nav>
<p class="caption">Methods are compared case by case: each method's per-case scores are
averaged over its seeds, differences are paired by case. Intervals are 95% percentile
bootstrap intervals over cases ({report.resamples} resamples, seed {report.seed}); p-values
are two-sided Wilcoxon signed-rank tests with zero differences dropped, Holm-adjusted.
Command: <code>{_e(report.command)}</code></p>
{body}
</main>
</body>
</html>
"""
