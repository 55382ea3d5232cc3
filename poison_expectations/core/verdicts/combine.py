"""Combining one row's p-values over several signals, and the row's poison score.

The signals look at the same row, so their p-values are dependent in unknown
ways; the combination must not assume independence.

* Cauchy combination (Liu & Xie, "Cauchy combination test: a powerful test
  with analytic p-value calculation under arbitrary dependency structures",
  JASA 115, 2020): T = sum_k w_k tan((0.5 - p_k) pi) with equal weights
  w_k = 1/d, combined p = 0.5 - arctan(T) / pi. Promise: exact when the p-values
  are independent or identical; under arbitrary dependence (their main theorem:
  pairwise bivariate-normal z-scores) the tail is asymptotically exact as the
  level goes to 0, so it is accurate at the small levels that matter, but not
  guaranteed at every level. It keeps the power of the strongest signal.
* Bonferroni over the minimum: min(1, d * min_k p_k). Promise: valid under ANY
  dependence at every level; loses power when several signals agree.

``poison_score`` maps a combined p-value to [0, 1] monotonically (smaller p,
higher score) and keeps resolution near p = 0, where 1 - p would round
distinct tiny p-values to the same 1.0. The findings' `poison_score` column
applies it to the geometric mean of the signals' ranking p-values
(ranking.py: no random tie-breaks), not to the combined p-value.
"""

from __future__ import annotations

import numpy as np

METHODS = ("cauchy", "bonferroni")
_P_MIN = 1e-300  # p = 0 would give an infinite Cauchy term


def _matrix(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError("pvalues must be a (rows, signals) matrix with at least one signal")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1] (no NaN)")
    return p


def cauchy_terms(p: np.ndarray) -> np.ndarray:
    """tan((0.5 - p) pi) computed without cancellation: cot(p pi) for p < 0.5,
    -cot((1 - p) pi) above (1 - p is exact there); p is clipped to
    [1e-300, 1 - 2^-53] so p = 0 and p = 1 stay finite."""
    p = np.clip(p, _P_MIN, np.nextafter(1.0, 0.0))
    low = p < 0.5
    out = np.empty_like(p)
    out[low] = 1.0 / np.tan(np.pi * p[low])
    out[~low] = -1.0 / np.tan(np.pi * (1.0 - p[~low]))
    return out


def cauchy_pvalue(statistic: np.ndarray) -> np.ndarray:
    """P(standard Cauchy > T); for T > 0 as arctan(1/T)/pi (no cancellation)."""
    t = np.asarray(statistic, dtype=np.float64)
    with np.errstate(divide="ignore"):
        upper = np.arctan(1.0 / t) / np.pi
    return np.where(t > 0, upper, 0.5 - np.arctan(t) / np.pi)


def combine_pvalues(pvalues, method: str = "cauchy") -> np.ndarray:
    """One combined p-value per row of a (rows, signals) matrix."""
    p = _matrix(pvalues)
    if method == "cauchy":
        return np.clip(cauchy_pvalue(cauchy_terms(p).mean(axis=1)), 0.0, 1.0)
    if method == "bonferroni":
        return np.minimum(1.0, p.shape[1] * p.min(axis=1))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def poison_score(combined_p, half_at: float = 0.01) -> np.ndarray:
    """Monotone map of a combined p-value into [0, 1]: L / (L + L_half) with
    L = -log10(p) and L_half = -log10(half_at). p = 1 gives 0, p = half_at
    gives 0.5 (default 0.01: a score above 0.5 reads "combined p below 1%"),
    p -> 0 gives 1; distinct tiny p-values keep distinct scores."""
    if not 0.0 < half_at < 1.0:
        raise ValueError("half_at must be in (0, 1)")
    p = np.clip(np.asarray(combined_p, dtype=np.float64), _P_MIN, 1.0)
    evidence = -np.log10(p)
    return evidence / (evidence - np.log10(half_at))
