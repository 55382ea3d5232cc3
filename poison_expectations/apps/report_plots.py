"""Plots of the HTML report, as inline SVG strings (matplotlib, Agg).

Text stays text in the SVG (`svg.fonttype: none`): small, sharp at any
zoom, and searchable in the page. No GX import here.
"""

from __future__ import annotations

import io
import re

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
    return compact_svg(text[text.index("<svg"):])  # drop the XML prolog and DOCTYPE: inline in HTML


def compact_svg(text: str) -> str:
    """matplotlib's SVG without what a page does not need: metadata, comments,
    one group per bar, indentation, and path coordinates cut to a tenth of a
    point (far below a pixel). A fraction of the size, the same picture."""
    text = re.sub(r"<metadata>.*?</metadata>|<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<g id=\"patch_\d+\">\s*(<path\b[^>]*/>)\s*</g>", r"\1", text)
    text = re.sub(r' d="([^"]*)"', lambda m: ' d="' + _short_numbers(m.group(1)) + '"', text)
    text = re.sub(r' (x|y)="(-?\d+\.\d)\d*"', r' \1="\2"', text)
    text = re.sub(r' transform="rotate\(-0 [^"]*\)"', "", text)  # a rotation by zero
    text = re.sub(r"font-family: [^;\"]*(; )?", "", text)  # the page's font (CSS) instead of a long list
    text = re.sub(r'<g id="[^"]*">', "<g>", text)
    text = re.sub(r">\s+<", "><", text).strip()
    return _BAR_RUN.sub(_merge_bars, text)


_BAR = re.compile(r'<path d="([^"]*)" clip-path="(url\(#\w+\))" style="([^"]*)"/>')
_BAR_RUN = re.compile(r'(?:<path d="[^"]*" clip-path="url\(#\w+\)" style="[^"]*"/>){2,}')


def _merge_bars(run: re.Match) -> str:
    """Consecutive bars of one colour as one path (same picture, one element)."""
    merged: list[list[str]] = []  # [d, clip, style]
    for d, clip, style in _BAR.findall(run.group(0)):
        if merged and merged[-1][1:] == [clip, style]:
            merged[-1][0] += " " + d
        else:
            merged.append([d, clip, style])
    return "".join(f'<path d="{d}" clip-path="{clip}" style="{style}"/>' for d, clip, style in merged)


def _short_numbers(path: str) -> str:
    path = re.sub(r"(\d+\.\d)\d+", r"\1", path)
    return re.sub(r"\s+", " ", path.replace(".0 ", " ")).strip()


def score_histogram(name: str, scores: np.ndarray, flags: np.ndarray) -> str:
    """Stacked histogram of one signal's row scores, flagged rows in red, with
    the flag limit (the lowest score of a flagged row) marked."""
    plt, fig, ax = _figure(5.0, 2.8)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    kept_counts, _ = np.histogram(scores[~flags], bins=edges)
    flagged_counts, _ = np.histogram(scores[flags], bins=edges)
    width = edges[1] - edges[0]
    # flagged rows are drawn from zero, in front of (not stacked on) the kept
    # rows of their bin: on a log scale 2 flagged rows on top of 1000 kept
    # ones would be an invisible sliver; empty bins draw nothing
    kept, hit = kept_counts > 0, flagged_counts > 0
    if kept.any():
        ax.bar(edges[:-1][kept], kept_counts[kept], width=width, align="edge", color=KEPT, label="not flagged")
    if hit.any():
        ax.bar(edges[:-1][hit] + width * 0.15, flagged_counts[hit], width=width * 0.7, align="edge",
               color=FLAGGED, label="flagged", zorder=3)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)
    if flags.any():
        limit = float(scores[flags].min())
        ax.axvline(limit, color=LIMIT, linestyle="--", linewidth=1.2, label=f"flag limit {limit:.3g}", zorder=2)
    ax.set_xlim(0, 1 + width * 0.25)  # room for a bar at score 1
    ax.set_xlabel(f"{name} score (0 = typical, 1 = most suspicious)")
    ax.set_ylabel("rows (log scale)")
    # the legend sits above the plot area, so it never covers bars or the flag-limit line
    ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, fontsize=8, borderaxespad=0.2)
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
    ax.barh(positions, share[order], color=colors, height=0.7, zorder=2)
    for y, i in zip(positions, order, strict=True):  # on a white ground, above the dashed line that may cross it
        ax.text(share[i], y, f" {int(flagged[i])}/{int(rows[i])}", va="center", fontsize=8, zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3})
    ax.axvline(overall, color=LIMIT, linestyle="--", linewidth=1.2, zorder=1)
    ax.set_yticks(positions, [names[i] for i in order])
    ax.set_xlim(0, min(1.0, max(float(share.max()) * 1.35, overall * 1.5, 0.05)))  # room for the labels
    ax.set_xlabel(f"flagged share per source (dashed: all rows, {overall:.1%})")
    shown = f" ({len(order)} of {len(names)} sources)" if len(names) > len(order) else ""
    ax.set_title(title + shown, fontsize=9, loc="left")
    return _svg(plt, fig)
