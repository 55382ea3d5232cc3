"""Biggio-style boundary poison: rows moved toward a linear boundary with
flipped labels (added rows)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (AttackContext, Poisoned, attack_context, describe, feature_std,
                                              filled_matrix, insert_rows, make_rows, n_added, other_class,
                                              round_to_precision)


def boundary_points(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    step_range: tuple[float, float] = (0.6, 0.9),
    noise: float = 0.02,
) -> Poisoned:
    """Biggio-style boundary poison: rows moved toward the boundary, with
    flipped labels (added rows).

    A logistic regression is fitted on the numeric features (at most 100k
    rows).  For each new row: a base row of class ``a`` that the model
    classifies as ``a`` (drawn uniformly, so classes contribute in proportion
    to their size) and another class ``b`` (random among the others).  The
    base row moves along the straight line toward class ``b``'s centroid;
    on that line the model's ``a``-vs-``b`` score is linear, so the crossing
    point ``lam*`` is exact, and the row is placed at ``u * lam*`` with ``u``
    uniform in ``step_range`` (60-90% of the way to the boundary, still on
    ``a``'s side).  Gaussian noise of ``noise`` x each feature's std is added,
    values are rounded to each column's precision, and the row gets label
    ``b``.  Sitting just inside ``a``'s region with ``b``'s label, these rows
    pull the boundary into ``a``'s territory.  Other columns (categoricals,
    source) are copied from the base row; ids are new.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=103)
    n, C, k = len(ctx.frame), len(ctx.classes), n_added(ctx)
    rng = ctx.rng
    X = filled_matrix(ctx)
    W, b = _fit_linear(ctx, X)
    centroids = np.stack([
        X[ctx.codes == c].mean(axis=0) if np.any(ctx.codes == c) else np.zeros(X.shape[1]) for c in range(C)
    ])
    pred = (X @ W.T + b).argmax(axis=1)
    eligible = np.flatnonzero(pred == ctx.codes)
    if len(eligible) == 0:
        eligible = np.arange(n)
    base = eligible[rng.integers(0, len(eligible), size=k)]
    to = other_class(ctx.codes[base], C, rng)
    lam_star = _crossing(W, b, X[base], ctx.codes[base], to, centroids)
    lam = lam_star * rng.uniform(step_range[0], step_range[1], size=k)
    moved = X[base] + lam[:, None] * (centroids[to] - X[base])
    moved += rng.normal(size=moved.shape) * (noise * feature_std(ctx))[None, :]
    moved = round_to_precision(ctx, moved)
    new = make_rows(ctx, base, moved, to)
    out, is_poison, _ = insert_rows(ctx, new)
    return Poisoned(
        out, is_poison,
        describe("boundary_points", "rows moved toward the LR boundary with flipped labels added", k, n + k),
        {"attack": "boundary_points", "mode": "toward_boundary_flipped", "n_poison": k, "rate": k / (n + k),
         "step_range": tuple(step_range), "noise": noise,
         "mean_step": float(lam.mean()) if k else None},
    )


def _crossing(W: np.ndarray, b: np.ndarray, x: np.ndarray, a: np.ndarray, to: np.ndarray,
              centroids: np.ndarray) -> np.ndarray:
    """Where each row's straight line to class `to`'s centroid crosses the
    `a`-vs-`to` boundary, as a fraction of the way in [0, 1] (0.5 when it never does)."""
    Wd = W[a] - W[to]  # a-vs-b direction per new row
    bd = b[a] - b[to]
    f0 = np.einsum("ij,ij->i", x, Wd) + bd  # > 0 on a's side
    f1 = np.einsum("ij,ij->i", centroids[to], Wd) + bd
    denom = f0 - f1
    lam_star = np.where(denom > 0, f0 / np.where(denom > 0, denom, 1.0), 0.5)
    return np.clip(lam_star, 0.0, 1.0)


def _fit_linear(ctx: AttackContext, X: np.ndarray, max_fit_rows: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on raw features; returns per-class weights W (C x d)
    and intercepts b (C), so class scores are X @ W.T + b (binary: class 0
    scores 0)."""
    from sklearn.linear_model import LogisticRegression

    y = ctx.codes
    n = len(y)
    rng = np.random.default_rng([ctx.seed, 9102])
    rows = np.arange(n) if n <= max_fit_rows else np.sort(rng.choice(n, size=max_fit_rows, replace=False))
    mean = X[rows].mean(axis=0)
    scale = X[rows].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = LogisticRegression(max_iter=500).fit((X[rows] - mean) / scale, y[rows])
    coef, icpt = model.coef_, model.intercept_
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        icpt = np.array([0.0, icpt[0]])
    W = coef / scale[None, :]
    b = icpt - W @ mean
    return W, b
