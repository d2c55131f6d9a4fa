"""The report's figures, drawn with matplotlib's Agg backend (no display needed).

Every function returns a closed :class:`matplotlib.figure.Figure`-free result: the
figure as SVG text (:func:`to_svg`) or PNG bytes (:func:`to_png`), so nothing is left
open and nothing is written to disk unless the caller does it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchbox.analysis.compare import Comparison

__all__ = [
    "PALETTE",
    "SIG_COLOURS",
    "CostPoint",
    "blob",
    "colour",
    "cost",
    "per_case",
    "significance",
    "to_png",
    "to_svg",
]

#: A colour-blind-safe palette (Okabe & Ito), cycled over methods.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
#: Significance map colours: row better, column better, no significant difference.
SIG_COLOURS = ("#1b7837", "#c2a5cf", "#f0f0f0")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",  # text stays text: smaller, selectable, crisp
            "svg.hashsalt": "benchbox",  # stable ids, so equal inputs give equal files
        }
    )
    return plt


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def to_svg(fig: Any) -> str:
    """The figure as inline SVG (no XML prologue, no fixed size: it scales to the page)."""
    plt = _pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", text, count=1)


def to_png(fig: Any, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _short(names: Sequence[str]) -> list[str]:
    return [n.replace(" / ", "\n") for n in names]


def per_case(c: Comparison) -> Any:
    """Box plot of each method's per-case scores with the cases drawn over it."""
    plt = _pyplot()
    k = len(c.methods)
    fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * k + 1.2), 3.0))
    rng = np.random.default_rng(0)
    ax.boxplot(
        list(c.values),
        positions=range(k),
        widths=0.55,
        showfliers=False,
        medianprops={"color": "#333333"},
    )
    for i, row in enumerate(c.values):
        jitter = rng.uniform(-0.18, 0.18, row.size)
        ax.scatter(i + jitter, row, s=7, alpha=0.55, color=colour(i), linewidths=0)
        ax.plot([i - 0.3, i + 0.3], [c.mean[i]] * 2, color="#d62728", lw=1.2)
    ax.set_xticks(range(k), _short(c.methods))
    better = "higher" if c.higher_is_better else "lower"
    ax.set_ylabel(f"{c.metric} ({better} is better)")
    ax.set_title(f"{c.metric} per case ({len(c.cases)} cases; red: mean)", fontsize=9)
    return fig


def blob(c: Comparison) -> Any:
    """Bootstrap rank distribution per method: blob area = share of resamples with that
    rank, cross = median, bar = 95 % interval (as challengeR's blob plot)."""
    plt = _pyplot()
    st = c.stability
    k = len(c.methods)
    fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * k + 1.2), 3.0))
    ax.plot([0, k - 1], [1, k], color="#bbbbbb", lw=0.8, ls=":")
    for i in range(k):
        ranks = np.arange(1, k + 1)
        share = st.frequency[i]
        shown = share > 0
        ax.scatter(
            np.full(shown.sum(), i),
            ranks[shown],
            s=share[shown] * 500,
            color=colour(i),
            alpha=0.6,
            linewidths=0,
        )
        ax.plot([i, i], [st.low[i], st.high[i]], color="#333333", lw=1.2)
        ax.scatter([i], [st.median[i]], marker="x", color="#333333", s=40, zorder=3)
    ax.set_xticks(range(k), _short(c.methods))
    ax.set_yticks(range(1, k + 1))
    ax.set_ylim(k + 0.6, 0.4)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylabel("rank over bootstrap resamples")
    ax.set_title(f"rank stability of {c.metric} ({st.resamples} resamples)", fontsize=9)
    return fig


def significance(c: Comparison) -> Any:
    """Pairwise significance map: green where the row's method is significantly better
    than the column's (Wilcoxon signed-rank, Holm), purple where it is worse, grey where
    the difference is not significant (the page's caption says so; no legend to crowd
    the labels)."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    k = len(c.methods)
    codes = np.full((k, k), 2)
    codes[c.wins] = 0
    codes[c.wins.T] = 1
    np.fill_diagonal(codes, 3)
    size = 0.5 * k + 1.4
    fig, ax = plt.subplots(figsize=(size + 1.2, size + 0.9))
    ax.imshow(codes, cmap=ListedColormap([*SIG_COLOURS, "#ffffff"]), vmin=0, vmax=3)
    labels = [m.replace(" / ", "/") for m in c.methods]
    ax.set_xticks(range(k), labels, rotation=40, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{c.metric}: row vs column", fontsize=9)
    return fig


@dataclass
class CostPoint:
    """One method in the quality-vs-cost scatter."""

    method: str
    quality: float
    low: float
    high: float
    images_per_s: float | None
    parameters: float | None


def cost(points: Sequence[CostPoint], metric: str, higher_is_better: bool) -> Any:
    """Quality (mean with 95 % CI) against inference speed and against parameters."""
    plt = _pyplot()
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.4), sharey=True)
    for ax, attr, label in (
        (axes[0], "images_per_s", "inference images/s"),
        (axes[1], "parameters", "parameters (fusion + segmenter)"),
    ):
        xs = []
        for i, p in enumerate(points):
            x = getattr(p, attr)
            if x is None or not np.isfinite(x):
                continue
            xs.append(x)
            ax.errorbar(
                [x],
                [p.quality],
                yerr=[[p.quality - p.low], [p.high - p.quality]],
                fmt="o",
                color=colour(i),
                capsize=2,
                ms=5,
                label=p.method if attr == "images_per_s" else None,
            )
        ax.set_xlabel(label)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.margins(x=0.15)
    better = "higher" if higher_is_better else "lower"
    axes[0].set_ylabel(f"{metric} ({better} is better)")
    fig.legend(loc="lower center", ncol=min(4, max(1, len(points))), frameon=False)
    fig.suptitle(f"{metric} against cost (bars: 95% CI over cases)", fontsize=9)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(points) - 1) // 4), 1, 1))
    return fig
