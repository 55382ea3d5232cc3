"""Lower confidence bound on the number of contaminated batch rows.

Closed testing (Marcus, Peritz, Gabriel 1976) with Simes local tests, i.e.
Hommel's procedure, read as simultaneous bounds on true discoveries:
Goeman & Solari, "Multiple testing for exploratory research", Stat. Sci. 26,
2011; Goeman, Meijer, Krebs, Solari, "Simultaneous control of all false
discovery proportions in large-scale multiple hypothesis testing",
Biometrika 106, 2019. Applied to conformal p-values this is conformalized
closed testing (Magnani, Sesia & Solari, arXiv 2308.05534) with the Simes
local test.

Each batch row j carries the null H_j "row j is exchangeable with the
reference" (clean). With h the size of the largest index set whose Simes
test does not reject at alpha (Hommel's h_alpha), the number of false nulls
(contaminated rows) in a set R is at least

    d(R) = max over 1 <= u <= |R| of  1 - u + #{j in R : h p_j <= u alpha}    (d(R) = |R| when h = 0),

Goeman et al. 2019 (checked here against brute-force closed testing). Promise: with probability >= 1 - alpha, d(R)
is <= the true number of contaminated rows in R simultaneously for every R
(here R = the whole batch), PROVIDED the Simes inequality holds for the
clean rows' p-values: true when they are PRDS (Sarkar 2008), which
conformal p-values sharing one reference are (Bates et al. 2023) when the
clean rows' scores are exchangeable with the reference scores and do not
depend on the contaminated rows (a batch row scored against the reference
only; a score using within-batch neighbours breaks this). Class-conditional
groups keep it when rows are independent across classes.
"""

from __future__ import annotations

import numpy as np


def hommel_h(pvalues, alpha: float) -> int:
    """h_alpha = max{i : p_(m-i+k) > k alpha / i for k = 1..i} (0 <= h <= m).

    Written per sorted index j = m - i + k: the condition is i < c_j with
    c_j = (m - j) alpha / (alpha - p_(j)) when p_(j) < alpha (else no
    constraint; c_m = 0 when p_(m) = alpha). As i grows its constraint set (j > m - i) grows, so the i
    that pass form a prefix: one pass over suffix minima, O(m log m)."""
    p = np.sort(np.asarray(pvalues, dtype=np.float64).ravel())
    m = len(p)
    if m == 0:
        return 0
    j = np.arange(1, m + 1)
    with np.errstate(divide="ignore"):
        c = np.where(p < alpha, (m - j) * alpha / (alpha - p), np.inf)
    c[(p == alpha) & (j == m)] = 0.0  # i (p - alpha) > (j - m) alpha fails for every i
    suffix_min = np.minimum.accumulate(c[::-1])  # suffix_min[i - 1] = min over j >= m - i + 1
    i = np.arange(1, m + 1)
    passing = i < suffix_min
    return m if passing.all() else int(np.argmin(passing))  # length of the passing prefix


def true_discoveries(pvalues, alpha: float) -> int:
    """d(all rows): simultaneous (1 - alpha) lower bound on the number of
    false nulls among all rows (see the module docstring)."""
    p = np.sort(np.asarray(pvalues, dtype=np.float64).ravel())
    m = len(p)
    if m == 0:
        return 0
    h = hommel_h(p, alpha)
    if h == 0:
        return m
    u = np.arange(1, m + 1)
    below = np.searchsorted(p, u * alpha / h, side="right")  # #{j : h p_j <= u alpha}
    return int(max(0, (1 - u + below).max()))
