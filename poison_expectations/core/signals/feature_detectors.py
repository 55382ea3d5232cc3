"""Feature-outlier detectors fitted on one table and scoring another.

ECOD (Li et al. 2022, "ECOD: unsupervised outlier detection using empirical
cumulative distribution functions"), as in pyod: for each feature j, the
left and right tail probabilities of a value under the fitted column's
empirical CDF, F_j(x) = #(fit <= x) / n and #(fit >= x) / n, give
U_l = -log F_l and U_r = -log F_r; the skewness sign of the fitted column
picks the tail U_s (left for negative skew, right for positive, their sum at
exactly zero); the outlier score is sum_j max(U_l, U_r, U_s). It is
parameter-free and linear in rows (one sort per column).

pyod's `ECOD.decision_function` re-estimates the CDFs on the training and
new rows together and keeps n x d float64 intermediates; here the CDFs stay
those of the fitted rows (the trusted reference) and each column is scored
in turn. A row that is not one of the fitted rows gets the "+1" estimate
(#(fit <= x) + 1) / (n + 1), the CDF it would see if added, so a value beyond
the fitted range is finite. On the fitted rows themselves the scores equal
pyod's `ECOD().fit(X).decision_scores_` (tested).

IForest (Liu, Ting & Zhou 2008) is available through pyod's `IForest`
(100 trees of 256-row samples); its score for the fitted rows is the
in-sample one.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import skew

DETECTORS = ("ecod", "iforest")


def ecod_scores(fit: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
    """ECOD scores of `score` rows (or of the fitted rows themselves) against `fit`."""
    own = score is None
    target = fit if own else score
    n_fit = fit.shape[0]
    total = np.zeros(target.shape[0])
    for j in range(fit.shape[1]):
        column = np.asarray(fit[:, j], dtype=np.float64)
        values = np.asarray(target[:, j], dtype=np.float64)
        ordered = np.sort(column)
        at_or_below = np.searchsorted(ordered, values, side="right")
        at_or_above = n_fit - np.searchsorted(ordered, values, side="left")
        if own:
            left, right = at_or_below / n_fit, at_or_above / n_fit
        else:
            left, right = (at_or_below + 1) / (n_fit + 1), (at_or_above + 1) / (n_fit + 1)
        u_left, u_right = -np.log(left), -np.log(right)
        direction = np.sign(skew(column)) if n_fit > 2 and np.ptp(column) > 0 else 0.0
        if direction < 0:
            u_skew = u_left
        elif direction > 0:
            u_skew = u_right
        else:
            u_skew = u_left + u_right
        total += np.maximum(np.maximum(u_left, u_right), u_skew)
    return total


def iforest_scores(fit: np.ndarray, score: np.ndarray | None, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores of the fitted rows, scores of `score` rows or None) from pyod's IForest."""
    from pyod.models.iforest import IForest

    model = IForest(n_estimators=100, max_samples=min(256, fit.shape[0]), random_state=random_state)
    model.fit(fit)
    return model.decision_scores_, (None if score is None else model.decision_function(score))
