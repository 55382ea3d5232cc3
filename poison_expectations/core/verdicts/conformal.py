"""Conformal p-values of batch rows against a reference's out-of-sample scores.

Bates, Candes, Lei, Romano, Sesia, "Testing for outliers with conformal
p-values", Annals of Statistics 51(1), 2023. A batch row with score s_j
(higher = more suspicious) is ranked among the n reference scores r_i:

    p_j = (#{i: r_i > s_j} + U_j * (#{i: r_i = s_j} + 1)) / (n + 1),  U_j ~ U(0, 1).

What this promises: if the clean batch row's score and the n reference
scores are exchangeable, p_j is EXACTLY Uniform(0, 1) (the random U_j breaks
ties, so discrete scores stay exact, not merely conservative). With
continuous scores the p-values of the clean batch rows are PRDS (Bates et
al. 2023, their multiple-testing result), so Benjamini-Hochberg and Simes
are valid over them.

Two tie modes, with the same marginal law:

* ``ties="shared"`` (default): every row of reference and batch gets an
  independent uniform secondary key and the pooled sample is ordered by
  (score, key). This is the continuous-score case exactly, so the joint law
  of the p-values under exchangeability is the distribution-free one
  (Bates et al.'s PRDS result applies, and the Monte Carlo null of
  :mod:`.higher_criticism` is exact). A batch row's position inside a block
  of m tied reference rows is uniform on {0..m}; adding U_j / (n + 1) gives
  the formula above in distribution.
* ``ties="independent"``: the formula above literally, vectorised with
  ``searchsorted``. Marginally identical; with ties, batch rows sharing a
  score get independent U_j, so the joint law differs from the exchangeable
  one (prefer "shared" when p-values feed a batch test).

Where the promise stops: exchangeability of a batch row's score with the
reference's scores. The reference scores are out-of-fold (cross-fitted) while
batch rows are scored by models fitted on the whole reference; that is
cross-conformal (Vovk 2015; Barber, Candes, Ramdas, Tibshirani 2021,
jackknife+/CV+), whose worst-case guarantee is weaker (level up to 2 x alpha)
although in practice it is close to exact. In self-check the batch rows'
own cross-fitted scores play both roles; no exchangeability guarantee holds
there (a row is ranked among rows that include the poison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIES = ("shared", "independent")


def _scores(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(array).any():
        raise ValueError(f"{name} contain NaN; score every row (or drop it) before ranking")
    return array


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def conformal_pvalues(batch_scores, reference_scores, *, seed=0, ties: str = "shared") -> np.ndarray:
    """One conformal p-value per batch row (see the module docstring).

    `seed` (int, sequence of ints or a numpy Generator) fixes the random tie
    breaking. An empty reference gives p = U_j (uniform, uninformative)."""
    s = _scores(batch_scores, "batch scores")
    r = _scores(reference_scores, "reference scores")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    rng = _rng(seed)
    if ties == "independent":
        return _independent(s, r, rng)
    return _shared(s, r, rng)


def _independent(s: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(r)
    ordered = np.sort(r)
    by_score = np.argsort(s)  # searchsorted is several times faster on sorted keys
    keys = s[by_score]
    below_or_equal = np.empty(len(s), dtype=np.int64)
    below = np.empty(len(s), dtype=np.int64)
    below_or_equal[by_score] = np.searchsorted(ordered, keys, side="right")
    below[by_score] = np.searchsorted(ordered, keys, side="left")
    above = n - below_or_equal
    equal = below_or_equal - below
    return (above + rng.random(len(s)) * (equal + 1)) / (n + 1)


def _shared(s: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Order the pooled sample by score, put every run of tied scores in a
    uniformly random order, count the reference rows above each batch row and
    add U_j: the continuous-case conformal p-values, exactly."""
    n, m = len(r), len(s)
    pooled = np.concatenate([r, s])
    order = np.argsort(pooled)
    values = pooled[order]
    equal_next = values[1:] == values[:-1]
    if equal_next.any():
        tied = np.zeros(n + m, dtype=bool)
        tied[:-1] |= equal_next
        tied[1:] |= equal_next
        run = np.concatenate([[0], np.cumsum(~equal_next)])
        where = np.flatnonzero(tied)  # runs are contiguous: sorting by (run, random key) shuffles inside runs only
        key = run[where] * len(where) + rng.permutation(len(where))  # distinct int64 keys, exact
        order[where] = order[where][np.argsort(key)]
    is_ref = order < n
    ref_at_or_below = np.cumsum(is_ref)
    positions = np.flatnonzero(~is_ref)
    above = np.empty(m, dtype=np.int64)
    above[order[positions] - n] = n - ref_at_or_below[positions]
    return (above + rng.random(m)) / (n + 1)


@dataclass(frozen=True)
class ClassConditional:
    """Class-conditional p-values with the groups they were ranked in.

    ``group[j]`` indexes ``groups``: the reference group batch row j was
    ranked in; ``pooled[j]`` marks rows ranked in the pooled group of small
    classes; ``groups`` lists (n_reference, n_batch) per group, the sizes the
    batch test and the bound need."""

    pvalues: np.ndarray
    group: np.ndarray
    pooled: np.ndarray
    groups: tuple[tuple[int, int], ...]


def class_conditional_pvalues(batch_scores, batch_labels, reference_scores, reference_labels, *,
                              min_class_rows: int = 50, seed=0, ties: str = "shared") -> ClassConditional:
    """Rank each batch row among the reference rows of its own class.

    Promise: exact uniformity of a clean row's p-value given its class, when
    rows of one class are exchangeable between batch and reference (label-
    conditional, "Mondrian" conformal calibration: Vovk, Gammerman & Shafer,
    Algorithmic Learning in a Random World, 2005). The default 50 is set from
    resolution, not from data: a class with fewer reference rows (or a batch
    class absent from the reference) cannot resolve small p-values (the
    smallest attainable is 1 / (n_c + 1), about 0.02 at 50). The rows of all
    such classes are ranked together in ONE pooled group made of
    the reference rows of all those classes, and marked ``pooled``. Such a
    row's p-value is exact given that its class is one of the small ones, so
    the groups stay disjoint and the batch test's null remains exact."""
    s = _scores(batch_scores, "batch scores")
    r = _scores(reference_scores, "reference scores")
    rng = _rng(seed)
    pvalues = np.empty(len(s))
    index = np.full(len(s), -1, dtype=np.int64)
    pooled = np.zeros(len(s), dtype=bool)
    sizes: list[tuple[int, int]] = []
    for in_b, in_r, is_pooled in class_groups(batch_labels, reference_labels, len(s), len(r), min_class_rows,
                                              with_pooled=True):
        pvalues[in_b] = conformal_pvalues(s[in_b], r[in_r], seed=rng, ties=ties)
        index[in_b] = len(sizes)
        pooled[in_b] = is_pooled
        sizes.append((int(in_r.sum()), int(len(in_b))))
    return ClassConditional(pvalues, index, pooled, tuple(sizes))


def class_groups(batch_labels, reference_labels, n_batch: int, n_reference: int, min_class_rows: int = 50,
                 with_pooled: bool = False):
    """The ranking groups, in order: each class with at least
    `min_class_rows` reference rows, then the pooled group of all the other
    classes. Yields (batch row indices, reference row mask[, pooled]) for the
    groups holding batch rows."""
    yb = np.asarray(batch_labels).ravel()
    yr = np.asarray(reference_labels).ravel()
    if len(yb) != n_batch or len(yr) != n_reference:
        raise ValueError("labels and scores must have one entry per row")
    _, codes = np.unique(np.concatenate([yr, yb]), return_inverse=True)
    code_r, code_b = codes[: len(yr)], codes[len(yr):]
    large = np.bincount(code_r, minlength=codes.max(initial=-1) + 1) >= min_class_rows
    group_r = np.where(large[code_r], code_r, -1)
    group_b = np.where(large[code_b], code_b, -1)
    for key in [*np.flatnonzero(large).tolist(), -1]:
        in_b = np.flatnonzero(group_b == key)
        if len(in_b):
            yield (in_b, group_r == key, key == -1) if with_pooled else (in_b, group_r == key)
