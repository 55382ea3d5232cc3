"""Lower confidence bound on the number of contaminated rows, from conformal ranks.

Closed testing (Marcus, Peritz, Gabriel, Biometrika 1976; used for bounds on
true discoveries by Goeman & Solari, Stat. Sci. 2011) with an EXACT
conformal local test, in the spirit of Magnani, Sesia & Solari,
"Collective outlier detection and enumeration with conformalized closed
testing" (arXiv 2308.05534), who pair closed testing with rank tests on
conformal p-values. Their local tests are different (locally most powerful /
adaptive rank tests); this one is a simple exact count test, chosen because
Simes (bounds.py) is weak when the reference is small: a conformal p-value
cannot go below 1/(n_ref + 1), while Simes asks for k alpha / m.

Local test of a set S of s batch rows ("all of S exchangeable with the n
reference rows"): for each k in the grid G = {1, 2, 4, ...,
max(1, floor(alpha0 (n + 1)))}, N_S(k) = #{j in S: p_j < k / (n + 1)} is the
number of rows of S more suspicious than the k-th most suspicious reference
row. Under the null the pooled ranks are a uniformly random arrangement, so
exactly

    P(N_S(k) >= c) = P(Hypergeometric(n + s, n, k + c - 1) <= k - 1)

(at most k - 1 reference rows among the k + c - 1 most suspicious pooled
rows). S is rejected when some k has that tail <= alpha / |G| (Bonferroni
over the grid): an exact level-alpha local test, monotone in the p-values,
whose critical values depend on s only.

Shortcut: for such a test the largest set closed testing cannot reject is
the largest set of the s least suspicious rows the local test keeps, so the
bound on all rows is d = m - h with h = max{s: not rejected on the s largest
p-values}. On that set N_s(k) = max(0, C(k) - (m - s)) grows by one per
added row while the critical value grows by at most one (a beta-binomial
count plus one Bernoulli), so rejection is an upper interval of s: found by
binary search per k, O(|G| log m) tail evaluations.

Promise: with probability >= 1 - alpha, d <= the number of contaminated batch
rows, when the clean batch rows' scores and the reference scores are
exchangeable (continuous or "shared"-tie-broken scores) and the clean rows'
scores do not depend on the contaminated rows. For class-conditional groups
the per-group bounds at alpha / (number of groups) are summed (Bonferroni).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .higher_criticism import Groups


def rank_grid(n_ref: int, alpha0: float = 0.1) -> np.ndarray:
    top = max(1, math.floor(alpha0 * (n_ref + 1)))
    return 2 ** np.arange(int(math.log2(top)) + 1)


def _rejects(s: int, count_total: int, m: int, k: int, n_ref: int, level: float) -> bool:
    found = count_total - (m - s)  # rows of the s least suspicious below k / (n + 1)
    if found <= 0:
        return False
    return bool(stats.hypergeom.cdf(k - 1, n_ref + s, n_ref, k + found - 1) <= level)


def _first_rejected(count_total: int, m: int, k: int, n_ref: int, level: float) -> int:
    """Smallest s in 1..m rejected by threshold k (m + 1 when none)."""
    if not _rejects(m, count_total, m, k, n_ref, level):
        return m + 1
    lo, hi = max(1, m - count_total + 1), m  # hi is rejected; below lo nothing is
    while lo < hi:
        mid = (lo + hi) // 2
        if _rejects(mid, count_total, m, k, n_ref, level):
            hi = mid
        else:
            lo = mid + 1
    return lo


def conformal_true_discoveries(pvalues, n_ref: int, alpha: float, alpha0: float = 0.1) -> int:
    """(1 - alpha) lower bound on the contaminated rows among these batch rows,
    whose p-values were ranked among the same `n_ref` reference rows."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    m = len(p)
    if m == 0:
        return 0
    grid = rank_grid(n_ref, alpha0)
    level = alpha / len(grid)
    ordered = np.sort(p)
    first = m + 1
    for k in grid.tolist():
        count_total = int(np.searchsorted(ordered, k / (n_ref + 1), side="left"))
        first = min(first, _first_rejected(count_total, m, k, n_ref, level))
    return m - (first - 1)


def grouped_true_discoveries(pvalues, groups: Groups, group_of_row, alpha: float, alpha0: float = 0.1) -> int:
    """Sum over disjoint reference groups of their bounds at alpha / #groups.
    `group_of_row[j]` indexes `groups` (the order of its (n_ref, n_batch))."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    index = np.asarray(group_of_row).ravel()
    used = [g for g, (_, b) in enumerate(groups) if b]
    level = alpha / max(len(used), 1)
    return sum(conformal_true_discoveries(p[index == g], groups[g][0], level, alpha0) for g in used)
