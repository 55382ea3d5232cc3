"""Benjamini-Hochberg: which rows to flag at a false discovery rate q.

Benjamini & Hochberg, JRSS-B 57, 1995: sort the m p-values, find the largest
k with p_(k) <= k q / m, flag the k smallest. Promise: E[clean flagged /
flagged] <= q m0 / m <= q when the p-values of the clean rows are
independent or PRDS (Benjamini & Yekutieli, Ann. Statist. 29, 2001).
Conformal p-values that share one reference are PRDS (Bates, Candes, Lei,
Romano, Sesia, Ann. Statist. 2023), so BH over one signal's
conformal p-values controls the FDR; over Cauchy-combined p-values the
guarantee is the approximate one of the combination (see combine.py).
"""

from __future__ import annotations

import numpy as np


def benjamini_hochberg(pvalues, q: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(flagged mask, BH-adjusted p-values) in the input order; a row is
    flagged iff its adjusted p-value is <= q."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any():
        raise ValueError("p-values contain NaN")
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= q, adjusted
