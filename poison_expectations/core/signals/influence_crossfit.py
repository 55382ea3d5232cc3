"""Out-of-fold influence statistics: fit the fold models once, score any rows.

`CrossFit.fit` splits the fitted rows (the reference, or the batch in a
self-check) into `n_folds` stratified folds; the model of fold f is
trained on the other folds (at most `max_train_rows` of them, sampled) and
scores fold f, so no fitted row is scored by a model that saw it. Held-out
influence is measured on fold f itself with the scored row left out.

The state keeps, per fold, what scoring needs without the training rows
(`HessianSolver.to_state`: parameters, diag(H), the Cholesky factor of H
when exact) and H^-1 times the summed loss gradient of the fold's held-out
rows. `CrossFit.score` assigns each new row to one fold drawn by hashing its
values (`row_draws`: the same fold in any batch or Spark chunk) and scores
it with that fold's model against that fold's held-out loss, so a clean
batch row is exchangeable with a fitted row of that fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poison_expectations.core.signals.base import row_draws
from poison_expectations.core.signals.influence_functions import HessianSolver, fit_logistic


@dataclass
class InfluenceStats:
    """Per-row statistics of one table, each row scored by a model that never saw it."""

    self_influence: np.ndarray
    heldout: np.ndarray
    leverage: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> "InfluenceStats":
        return cls(np.zeros(n), np.zeros(n), np.zeros(n))


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per row, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        folds[rng.permutation(rows)] = (np.arange(len(rows)) + offset) % n_folds
        offset += len(rows)
    return folds


def _subsample(rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    if len(rows) <= cap:
        return rows
    return np.sort(rng.choice(rows, size=cap, replace=False))


@dataclass
class CrossFit:
    """Out-of-fold influence statistics (see the module docstring)."""

    n_folds: int = 5
    l2: float = 1e-3
    max_train_rows: int = 100_000
    exact_max_params: int = 400
    random_state: int = 0

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.random_state, 4242])

    def fit(self, X: np.ndarray, y: np.ndarray) -> tuple[InfluenceStats, dict]:
        """(out-of-fold stats of the fitted rows, the plain-data state `score` uses)."""
        n = len(y)
        n_folds = max(2, min(self.n_folds, n))
        folds = stratified_folds(y, n_folds, self.random_state)
        rng = self._rng()
        stats = InfluenceStats.zeros(n)
        models: list = []
        info = {"folds": n_folds, "exact": True, "n_params": 0, "train_rows_per_fold": 0}
        for f in range(n_folds):
            held = np.flatnonzero(folds == f)
            train = _subsample(np.flatnonzero(folds != f), self.max_train_rows, rng)
            model = fit_logistic(X[train], y[train], self.l2, self.random_state)
            if model is None or held.size == 0:
                models.append(None)
                continue
            solver = HessianSolver(model, X[train], self.exact_max_params)
            info.update(exact=info["exact"] and solver.exact, n_params=model.n_params,
                        train_rows_per_fold=max(info["train_rows_per_fold"], len(train)))
            s_fold = solver.solve(solver.gradient_sum(X[held], y[held]))
            quad, dot, lev = solver.row_stats(X[held], y[held], s_fold)
            stats.self_influence[held] = quad
            # leave the scored row out of its own validation set
            stats.heldout[held] = -(dot - quad) / max(held.size - 1, 1)
            stats.leverage[held] = lev
            models.append({**solver.to_state(), "heldout_direction": s_fold, "held_rows": int(held.size)})
        return stats, {"folds": models, "info": info}

    def score(self, state: dict, X: np.ndarray, y: np.ndarray) -> InfluenceStats:
        """Stats of new rows from the stored fold models (nothing is refitted)."""
        models = state["folds"]
        folds = row_draws(X, len(models), self.random_state)  # the same fold wherever the row is scored
        stats = InfluenceStats.zeros(len(y))
        for f, fold in enumerate(models):
            rows = np.flatnonzero(folds == f)
            if fold is None or rows.size == 0:
                continue
            solver = HessianSolver.from_state(fold)
            quad, dot, lev = solver.row_stats(X[rows], y[rows], np.asarray(fold["heldout_direction"]))
            stats.self_influence[rows] = quad
            stats.heldout[rows] = -dot / fold["held_rows"]
            stats.leverage[rows] = lev
        return stats
