"""Conformal p-values for signals whose score function is learned on the batch.

Spectral signatures and activation clustering find poison through the
batch's own structure (its top direction, its small cluster), which a
reference of clean rows does not have. Scoring batch rows by a function
fitted on those same rows would make them look more extreme than reference
rows scored by it, so the batch is split in two halves at random: the score
function learned on one half scores the other half and the reference rows
of the class, and a held-out row is ranked among those reference scores
(split conformal: exact, because the held-out clean rows and the reference
rows are exchangeable given the function, whatever the fitting half holds).
The halves are two blocks whose p-values share the reference rows; a batch
test combines the blocks by Bonferroni (core/verdicts/gate.py), which stays
exact.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from poison_expectations.core.verdicts.conformal import conformal_pvalues

Scorer = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]  # fit rows -> (rows -> scores)


def split_pvalues(R: np.ndarray, y: np.ndarray, R_ref: np.ndarray, y_ref: np.ndarray, fit: Scorer,
                  min_rows: int, seed) -> tuple[np.ndarray, tuple, list[np.ndarray]]:
    """(p-values, (groups, group_of_row), blocks) for every batch row. Rows of a
    class with fewer than `min_rows` rows in a half or in the reference get a
    uniform p-value (no evidence) in a group of their own."""
    rng = np.random.default_rng(seed)
    n = len(y)
    half = rng.permutation(n) % 2
    p = rng.random(n)  # uniform: the no-evidence value of untested rows
    group_of_row = np.full(n, -1, dtype=np.int64)
    groups: list[tuple[int, int]] = []
    for c in np.unique(y):
        ref_rows = R_ref[y_ref == c]
        for h in (0, 1):
            fit_rows = (y == c) & (half != h)
            test_rows = np.flatnonzero((y == c) & (half == h))
            if min(int(fit_rows.sum()), len(test_rows), len(ref_rows)) < min_rows:
                continue
            score = fit(R[fit_rows])
            p[test_rows] = conformal_pvalues(score(R[test_rows]), score(ref_rows), seed=rng)
            group_of_row[test_rows] = len(groups)
            groups.append((len(ref_rows), len(test_rows)))
    untested = group_of_row < 0
    for h in (0, 1):  # untested rows: one group per half with no reference rows (uniform p-values)
        rows = untested & (half == h)
        if rows.any():
            group_of_row[rows] = len(groups)
            groups.append((0, int(rows.sum())))
    return p, (tuple(groups), group_of_row), [np.flatnonzero(half == 0), np.flatnonzero(half == 1)]
