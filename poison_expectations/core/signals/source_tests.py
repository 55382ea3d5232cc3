"""Tests of one group's flagged count against the rest of the batch.

Fisher's exact test conditions on the margins: with N rows, K flagged and a
source of n rows, its flagged count is Hypergeom(N, K, n) under the null
that flags do not depend on the source. One-sided p = P(X >= k).

Stratified by label class (the exact conditional test behind
Cochran-Mantel-Haenszel, Zelen 1971): within class c the source's flagged
count is Hypergeom(N_c, K_c, n_c), independently across classes, and the
p-value is the upper tail of their sum. An honest source whose class mix
leans to a class that signals flag more often is then compared with the
rest's rate IN THAT CLASS, not with a pooled rate its mix inflates. The
sum's distribution is an exact convolution while the source's flagged count
is at most `EXACT_MAX_COUNT` (only values below it are needed:
P(T >= t) = 1 - P(T <= t - 1)); above it, the CMH normal approximation with
a continuity correction, accurate at such counts.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

EXACT_MAX_COUNT = 2000


def fisher_greater(k: np.ndarray, n: np.ndarray, flagged_total: int, total: int) -> np.ndarray:
    """One-sided Fisher exact p-values: P(X >= k), X ~ Hypergeom(total, flagged_total, n)."""
    if flagged_total == 0:
        return np.ones(len(k))
    return np.clip(stats.hypergeom.sf(np.asarray(k) - 1, total, flagged_total, np.asarray(n)), 0.0, 1.0)


def stratified_fisher_greater(k: int, n_c: np.ndarray, K_c: np.ndarray, N_c: np.ndarray) -> float:
    """P(sum_c X_c >= k), X_c ~ Hypergeom(N_c, K_c, n_c) independent (one group, C strata)."""
    if k <= 0:
        return 1.0
    keep = n_c > 0
    n_c, K_c, N_c = n_c[keep].astype(np.int64), K_c[keep].astype(np.int64), N_c[keep].astype(np.int64)
    if k > EXACT_MAX_COUNT:
        share = K_c / N_c
        mean = float((n_c * share).sum())
        var = float((n_c * share * (1 - share) * (N_c - n_c) / np.maximum(N_c - 1, 1)).sum())
        if var <= 0:
            return float(k <= mean)
        return float(stats.norm.sf((k - mean - 0.5) / np.sqrt(var)))
    below = np.ones(1)  # distribution of the partial sum, truncated to values 0..k-1
    for n, K, N in zip(n_c, K_c, N_c, strict=True):
        low = max(0, n + K - N)
        if low > k - 1:
            return 1.0  # this stratum alone forces T >= k
        top = min(n, K, k - 1)
        below = np.convolve(below, _hypergeom_pmf(np.arange(top + 1), N, K, n))[:k]
    return float(min(1.0, max(0.0, 1.0 - below.sum())))


def _hypergeom_pmf(x: np.ndarray, N: int, K: int, n: int) -> np.ndarray:
    """Hypergeometric pmf via log binomial coefficients (zero outside the support)."""
    x = np.asarray(x, dtype=np.int64)
    valid = (x >= max(0, n + K - N)) & (x <= min(n, K))
    xv = np.where(valid, x, 0)
    log_pmf = _log_comb(K, xv) + _log_comb(N - K, n - xv) - _log_comb(N, n)
    return np.where(valid, np.exp(log_pmf), 0.0)


def _log_comb(n, k):
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(np.maximum(n - k, 0) + 1)


def class_adjusted_rate(k_sc: np.ndarray, n_sc: np.ndarray) -> np.ndarray:
    """Per source: the flagged share the REST's per-class rates predict for this
    source's class mix (where only this source has a class, its own rate)."""
    K_c = k_sc.sum(axis=0)[None, :]
    N_c = n_sc.sum(axis=0)[None, :]
    rest_n = N_c - n_sc
    own = np.divide(k_sc, n_sc, out=np.zeros(n_sc.shape), where=n_sc > 0)
    rest = np.divide(K_c - k_sc, rest_n, out=own.copy(), where=rest_n > 0)
    rows = n_sc.sum(axis=1)
    return np.divide((n_sc * rest).sum(axis=1), rows, out=np.zeros(len(rows)), where=rows > 0)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence, base 2 (0 = same distribution, 1 = disjoint), row-wise."""
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
    q = q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-300)
    m = 0.5 * (p + q)

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0)
        return terms.sum(axis=-1)

    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)
