"""A comparison as tables of strings (for rich, Markdown and HTML) or of numbers (CSV)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from benchbox.analysis.compare import Comparison

__all__ = [
    "arrow",
    "interval",
    "markdown",
    "mean_sd",
    "method_rows",
    "methods_frame",
    "methods_table",
    "number",
    "pairs_frame",
    "pairs_table",
    "pvalue",
    "summary_line",
]


def number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, trailing zeros kept; ``-`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:#.{digits}g}".rstrip(".")


def mean_sd(value: float | None, sd: float | None, n: int) -> str:
    """``mean ± sd`` (4 and 2 significant digits) over ``n`` seeds; the mean alone for
    one seed; ``-`` for no value."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{number(value)} ± {number(sd, 2)}" if n > 1 else number(value)


def method_rows(table: Any, by: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """A method table (:func:`benchbox.analysis.methods.method_table`) as text: the ``by``
    columns, seeds, runs, then ``mean ± sd`` of each metric."""
    metrics = [c for c in table.columns if c not in (*by, "n", "runs") and not c.endswith("_std")]
    header = [*by, "seeds", "runs", *metrics]
    rows = [
        [
            *(str(r[c]) for c in by),
            str(int(r["n"])),
            str(int(r["runs"])),
            *(mean_sd(r[m], r[f"{m}_std"], int(r["n"])) for m in metrics),
        ]
        for _, r in table.iterrows()
    ]
    return header, rows


def pvalue(p: float) -> str:
    """A p-value in two significant digits; below 1e-4 as ``<1e-4``."""
    if p < 1e-4:
        return "<1e-4"
    return f"{p:.2g}"


def interval(low: float, high: float, digits: int = 4) -> str:
    return f"[{number(low, digits)}, {number(high, digits)}]"


def arrow(comparison: Comparison) -> str:
    return "↑" if comparison.higher_is_better else "↓"


def methods_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Per method: rank, mean with 95 % CI, seeds and their spread, the median bootstrap
    rank with its 95 % interval, and the share of methods beaten significantly (with the
    rank by that share)."""
    header = [
        "rank",
        "method",
        f"{c.metric} {arrow(c)}",
        "95% CI",
        "seeds",
        "seed sd",
        "rank [95%]",
        "sig. wins",
    ]
    rows = []
    for r in c.method_records():
        rows.append(
            [
                str(r["rank"]),
                r["method"],
                number(r["mean"]),
                interval(r["ci_low"], r["ci_high"]),
                str(r["seeds"]),
                number(r["seed_sd"], 2),
                f"{r['median_rank']} [{r['rank_low']}-{r['rank_high']}]",
                f"{r['significant_wins']:.0%} (rank {r['significance_rank']})",
            ]
        )
    return header, rows


def pairs_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Per pair: mean paired difference with 95 % CI, Holm-adjusted p, effect size."""
    header = ["A", "B", "mean A - B", "95% CI", "p (Holm)", "rank-biserial", "ties", "better"]
    rows = []
    for p in c.pairs:
        rows.append(
            [
                p["a"],
                p["b"],
                number(p["difference"], 3),
                interval(p["ci_low"], p["ci_high"], 3),
                pvalue(p["p_holm"]),
                f"{p['rank_biserial']:+.2f}",
                str(p["n_zero"]),
                p["better"] or "n.s.",
            ]
        )
    return header, rows


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def methods_frame(c: Comparison) -> pd.DataFrame:
    """The methods table as numbers, one row per method (for CSV)."""
    import pandas as pd

    records = [{**r, "runs": ";".join(r["runs"])} for r in c.method_records()]
    return pd.DataFrame(records)


def pairs_frame(c: Comparison) -> pd.DataFrame:
    """The pairs table as numbers, one row per comparison (for CSV)."""
    import pandas as pd

    return pd.DataFrame(c.pairs)


def summary_line(c: Comparison) -> str:
    """What the numbers are, in one sentence, for under a table."""
    family = f"against {c.reference}" if c.reference else "between every pair"
    return (
        f"{c.metric} ({'higher' if c.higher_is_better else 'lower'} is better) on "
        f"{len(c.cases)} cases of {c.dataset}; per-case scores averaged over each method's "
        f"seeds. 95% CIs: percentile bootstrap over cases ({c.resamples} resamples, seed "
        f"{c.seed}). Wilcoxon signed-rank tests {family}, zero differences dropped, Holm-"
        f"adjusted, significant at {c.alpha:g}. Bootstrap rank: median and 95% interval of "
        "the mean-based rank over the same resamples."
    )
