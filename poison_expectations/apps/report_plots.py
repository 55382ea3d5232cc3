"""Plots of the HTML report, as inline SVG strings (matplotlib, Agg).

Text stays text in the SVG (`svg.fonttype: none`): small, sharp at any
zoom, and searchable in the page. No GX import here.
"""

from __future__ import annotations

import io

import numpy as np

FLAGGED = "#c0392b"
KEPT = "#95a5a6"
LIMIT = "#2c3e50"
BINS = 40
MAX_SOURCES = 25


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt, *plt.subplots(figsize=(width, height))


def _svg(plt, fig) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline in HTML


def score_histogram(name: str, scores: np.ndarray, flags: np.ndarray) -> str:
    """Stacked histogram of one signal's row scores, flagged rows in red, with
    the flag limit (the lowest score of a flagged row) marked."""
    plt, fig, ax = _figure(5.0, 2.8)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    kept_counts, _ = np.histogram(scores[~flags], bins=edges)
    flagged_counts, _ = np.histogram(scores[flags], bins=edges)
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], kept_counts, width=width, align="edge", color=KEPT, label="not flagged")
    ax.bar(edges[:-1], flagged_counts, width=width, align="edge", bottom=kept_counts, color=FLAGGED,
           label="flagged")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)
    if flags.any():
        limit = float(scores[flags].min())
        ax.axvline(limit, color=LIMIT, linestyle="--", linewidth=1.2)
        ax.annotate(f"flag limit {limit:.3g}", xy=(limit, 1), xycoords=("data", "axes fraction"),
                    xytext=(4, -12), textcoords="offset points", color=LIMIT, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{name} score (0 = typical, 1 = most suspicious)")
    ax.set_ylabel("rows (log scale)")
    ax.legend(frameon=False, loc="upper center", ncol=2, fontsize=8)
    return _svg(plt, fig)


def source_bars(title: str, sources: np.ndarray, flags: np.ndarray) -> str:
    """Flagged share per source (the highest first), with the overall share dashed."""
    names, inverse = np.unique(sources.astype(str), return_inverse=True)
    rows = np.bincount(inverse, minlength=len(names))
    flagged = np.bincount(inverse, weights=flags.astype(float), minlength=len(names))
    share = flagged / np.maximum(rows, 1)
    order = np.lexsort((-rows, -share))[:MAX_SOURCES]
    height = 0.9 + 0.26 * len(order)
    plt, fig, ax = _figure(5.0, height)
    positions = np.arange(len(order))[::-1]
    overall = flags.mean() if len(flags) else 0.0
    colors = [FLAGGED if share[i] > overall else KEPT for i in order]
    ax.barh(positions, share[order], color=colors, height=0.7)
    for y, i in zip(positions, order, strict=True):
        ax.text(share[i], y, f" {int(flagged[i])}/{int(rows[i])}", va="center", fontsize=8)
    ax.axvline(overall, color=LIMIT, linestyle="--", linewidth=1.2)
    ax.set_yticks(positions, [names[i] for i in order])
    ax.set_xlim(0, min(1.0, max(float(share.max()) * 1.25, overall * 1.5, 0.05)))
    ax.set_xlabel(f"flagged share per source (dashed: all rows, {overall:.1%})")
    shown = f" ({len(order)} of {len(names)} sources)" if len(names) > len(order) else ""
    ax.set_title(title + shown, fontsize=9, loc="left")
    return _svg(plt, fig)
