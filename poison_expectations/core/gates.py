"""Statistical gates shared by the expectations.

Batch against reference: the reference shows k0 flagged rows of n0; its rate
is bounded above by the one-sided Clopper-Pearson bound at `confidence`, so
a small reference is not overtrusted. The batch (k of n) fails when the
one-sided binomial p-value P(X >= k | n, p0_upper) is below alpha AND the
excess k/n - k0/n0 is over the minimum effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial proportion."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(stats.beta.ppf(confidence, k + 1, n - k))


def clopper_pearson_upper_array(k: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """`clopper_pearson_upper` for arrays of counts, in one vectorised call."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    out = np.ones(np.broadcast(k, n).shape)
    inside = (n > 0) & (k < n)
    out[inside] = stats.beta.ppf(confidence, (k + 1)[inside], (n - k)[inside])
    return out


@dataclass(frozen=True)
class ReferenceGate:
    batch_rate: float
    reference_rate: float
    reference_upper: float
    p_value: float
    excess: float
    passed: bool

    def as_dict(self) -> dict:
        return {
            "batch_rate": self.batch_rate,
            "reference_rate": self.reference_rate,
            "reference_rate_upper": self.reference_upper,
            "p_value": self.p_value,
            "excess_over_reference": self.excess,
            "passed": self.passed,
        }


def reference_gate(k: int, n: int, k0: int, n0: int, *, alpha: float, min_excess: float,
                   confidence: float = 0.95) -> ReferenceGate:
    """Fail only when the batch's rate is significantly AND materially above the reference's."""
    rate = k / n if n else 0.0
    rate0 = k0 / n0 if n0 else 0.0
    upper = clopper_pearson_upper(k0, n0, confidence)
    p_value = float(stats.binom.sf(k - 1, n, upper)) if n else 1.0
    excess = rate - rate0
    passed = not (p_value < alpha and excess > min_excess)
    return ReferenceGate(rate, rate0, upper, p_value, excess, passed)


def dispersion_index(counts, sizes) -> float:
    """Pearson chi-square / df of flagged counts over equal-sized clean batches:
    how much more the count varies than a binomial would (1 = binomial).
    Flags of neighbouring rows are correlated, and a signal's thresholds are
    re-estimated on every batch, so clean counts are often overdispersed
    (measured 1.1 to 2.2 for label consistency). At least 1; 1 for fewer than 2 batches."""
    counts = np.asarray(counts, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    if len(counts) < 2 or sizes.sum() <= 0:
        return 1.0
    p = counts.sum() / sizes.sum()
    if p <= 0.0 or p >= 1.0:
        return 1.0
    chi2 = float(np.sum((counts - sizes * p) ** 2 / (sizes * p * (1 - p))))
    return max(1.0, chi2 / (len(counts) - 1))


def calibrated_rate_limit(flagged: int, rows: int, batch_rows: int, confidence: float = 0.999,
                          dispersion: float = 1.0) -> float:
    """The highest flagged share a clean batch of `batch_rows` rows should show,
    given `flagged` of `rows` flagged on trusted data (`poison-check calibrate`).

    Two margins, each at `confidence`: the trusted rate is replaced by its
    one-sided Clopper-Pearson upper bound p_u (the baseline is an estimate),
    and the limit is the `confidence` quantile of a batch's count at p_u (a
    batch's own noise): the binomial quantile, or with `dispersion` phi > 1 the
    normal quantile m p_u + z sqrt(phi m p_u (1 - p_u)) if that is higher.
    """
    if batch_rows <= 0:
        raise ValueError("batch_rows must be positive")
    upper = clopper_pearson_upper(flagged, rows, confidence)
    count = float(stats.binom.ppf(confidence, batch_rows, upper))
    if dispersion > 1.0:
        z = float(stats.norm.ppf(confidence))
        spread = math.sqrt(dispersion * batch_rows * upper * (1.0 - upper))
        count = max(count, math.ceil(batch_rows * upper + z * spread))
    return min(1.0, count / batch_rows)
