"""Deterministic, score-monotone p-values for RANKING rows (not for testing).

A conformal p-value (conformal.py) is a rank: it takes at most n + 1 values
and breaks ties at random. That is what makes it exact, and what makes it a
poor ranking where the poison sits: every batch row scoring above the
largest reference score gets U / (n + 1), U uniform, so the rows a signal is
most sure of are put in random order, and the other signals' p-values then
decide among them. `poison_score` only ranks, so it uses this smoothed
version of the same p-value instead:

* inside the reference's range, the mid-rank conformal p-value (ties count
  half: U = 1/2), linearly interpolated between the distinct reference
  scores, so it is continuous and strictly decreasing there;
* above the largest reference score, an exponential tail (peaks over
  threshold, as in conformal anomaly detection practice): the excesses of
  the top k reference scores over the (k + 1)-th largest are fitted by an
  exponential law with scale beta (their mean), and, by its lack of memory,
  p(s) = p(max) x exp(-(s - max) / beta) beyond the maximum.

A signal that computes its own p-values counts only where its detector
scored the row, scaled by how selective the detector was
(`own_rank_pvalues`), and `ranking_score` adds the signals' evidence
(Fisher) instead of following the smallest p-value (Cauchy).
docs/verdicts.md ("How poison_score ranks") has the measurements.

What it promises: p is a non-increasing function of the score that is
strictly decreasing above the reference's minimum, so ranking by it (per
signal) is ranking by the score, and rows of one class group compare on the
conformal scale across groups. What it does not: it is not a valid p-value
(the mid-rank is slightly anti-conservative, the tail is a model). Tests
and flags use the randomized conformal p-values; only the ranking uses this.
"""

from __future__ import annotations

import math

import numpy as np

from .combine import poison_score
from .conformal import _scores, class_groups

_P_MIN = 1e-300  # as combine.py: p = 0 would give infinite evidence


def tail_scale(reference_scores: np.ndarray) -> float:
    """Scale of an exponential fit to the reference's upper tail: the mean
    excess of the top k = ceil(sqrt(n)) scores (at least 5) over the next
    one. Falls back to the scores' standard deviation (then 1) when the top
    is flat, so the tail never collapses to a step."""
    r = np.sort(np.asarray(reference_scores, dtype=np.float64))
    n = len(r)
    if n >= 2:
        k = min(n - 1, max(5, math.ceil(math.sqrt(n))))
        beta = float(np.mean(r[n - k:] - r[n - k - 1]))
        if beta > 0:
            return beta
        spread = float(np.std(r))
        if spread > 0:
            return spread
    return 1.0


def ranking_pvalues(batch_scores, reference_scores) -> np.ndarray:
    """One smoothed p-value per batch row (see the module docstring); an
    empty reference gives 1 everywhere (no evidence)."""
    s = _scores(batch_scores, "batch scores")
    r = _scores(reference_scores, "reference scores")
    n = len(r)
    if n == 0:
        return np.ones(len(s))
    knots, counts = np.unique(r, return_counts=True)
    above = n - np.cumsum(counts)
    at_knots = (above + 0.5 * (counts + 1)) / (n + 1)
    p = np.interp(s, knots, at_knots)
    beyond = s > knots[-1]
    p[beyond] = at_knots[-1] * np.exp(-(s[beyond] - knots[-1]) / tail_scale(r))
    return p


def class_conditional_ranking(batch_scores, batch_labels, reference_scores, reference_labels, *,
                              min_class_rows: int = 50) -> np.ndarray:
    """`ranking_pvalues` within the reference rows of each batch row's class,
    in the groups `class_conditional_pvalues` ranks them in (small classes
    pooled)."""
    s = _scores(batch_scores, "batch scores")
    r = _scores(reference_scores, "reference scores")
    p = np.ones(len(s))
    for in_b, in_r in class_groups(batch_labels, reference_labels, len(s), len(r), min_class_rows):
        p[in_b] = ranking_pvalues(s[in_b], r[in_r])
    return p


def own_rank_pvalues(pvalues, scores) -> np.ndarray:
    """Ranking p-values of a signal that computes its own p-values (near
    duplicates: randomized hypergeometric; spectral signatures, activation
    clustering: split conformal along a direction or cluster learned on the
    batch). Where its detector scored the row 0, 1 (no evidence): there the
    p-value is a random tie-break (a row with no close partner gets U) or a
    distance along a structure the detector rejected, only noise in a
    ranking. Where it scored the row above 0, the p-value times the share of
    batch rows it scored: the chance that a clean row is picked by the
    detector at all and then looks that extreme (the share counts the
    poisoned rows too, so it errs towards less evidence). A detector that
    picks 1% of the rows says more about each than its p-value alone."""
    p = np.asarray(pvalues, dtype=np.float64)
    scored = np.asarray(scores, dtype=np.float64) > 0
    share = max(float(scored.mean()), 1.0 / len(p)) if len(p) else 1.0
    return np.where(scored, p * share, 1.0)


def ranking_score(rank_pvalues) -> np.ndarray:
    """poison_score from a (rows, signals) matrix of ranking p-values:
    L / (L + 2) with L = the mean over the signals of -log10 p, i.e. Fisher's
    product of the p-values, on a [0, 1] scale where 0.5 means a geometric mean
    of 1%. Fisher, not Cauchy, for the ranking: it adds the signals' evidence,
    so agreement counts and a signal that is uniform noise for this attack
    adds light-tailed noise, while the Cauchy sum follows the single smallest
    p-value of any signal, which a clean row draws by chance from some noise
    signal as often as a poisoned row from the right one. Not a p-value."""
    p = np.asarray(rank_pvalues, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError("rank_pvalues must be a (rows, signals) matrix with at least one signal")
    evidence = -np.log10(np.clip(p, _P_MIN, 1.0)).mean(axis=1)
    return poison_score(np.power(10.0, -evidence))  # the geometric mean on combine.py's scale
