"""Label-flip attacks (rows stay in place): random flips, and targeted flips
of the rows nearest a cross-validated linear boundary."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (AttackContext, Poisoned, attack_context, copy_frame, describe,
                                              filled_matrix, label_values, n_inplace, other_class)


def random_flips(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
) -> Poisoned:
    """Relabel ``round(rate * n)`` uniformly chosen rows to a different,
    uniformly chosen class.  Rows stay in place."""
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column,
                         stream=101, need_numeric=False)
    n, C, k = len(ctx.frame), len(ctx.classes), n_inplace(ctx)
    idx = np.sort(ctx.rng.choice(n, size=k, replace=False))
    codes = ctx.codes.copy()
    codes[idx] = other_class(codes[idx], C, ctx.rng)
    out = copy_frame(ctx)
    out[label_column] = label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    return Poisoned(out, is_poison, describe("random_flips", "labels flipped to a random other class", k, n),
                    {"attack": "random_flips", "n_poison": k, "rate": k / n})


def margin_flips(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_folds: int = 3,
) -> Poisoned:
    """Targeted flips of the rows closest to the decision boundary.

    A ``n_folds``-fold cross-validated logistic regression (standardised
    numeric features; each fold's model fitted on at most 100k rows) scores
    every row out of fold.  The margin is the given class's logit minus the
    best other class's logit.  The ``round(rate * n)`` rows with the smallest
    non-negative margin (correctly classified but least confidently; rows
    with negative margins only if there are not enough) get the runner-up
    class as their new label.  Rows stay in place.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=102)
    n, k = len(ctx.frame), n_inplace(ctx)
    scores = _cv_scores(ctx, n_folds=n_folds)
    own = scores[np.arange(n), ctx.codes]
    others = scores.copy()
    others[np.arange(n), ctx.codes] = -np.inf
    runner_up = others.argmax(axis=1)
    margin = own - others[np.arange(n), runner_up]
    key = np.where(margin >= 0, margin, np.inf)
    # tie-break by a seeded random key so equal margins do not favour early rows
    order = np.lexsort((ctx.rng.random(n), -np.where(margin < 0, margin, 0.0), key))
    idx = np.sort(order[:k])
    codes = ctx.codes.copy()
    codes[idx] = runner_up[idx]
    out = copy_frame(ctx)
    out[label_column] = label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    return Poisoned(
        out, is_poison,
        describe("margin_flips", "labels of the rows nearest the CV logistic boundary flipped to the runner-up class",
                 k, n),
        {"attack": "margin_flips", "n_poison": k, "rate": k / n,
         "max_flipped_margin": float(margin[idx].max()) if k else None, "n_folds": n_folds},
    )


def _cv_scores(ctx: AttackContext, n_folds: int = 3, max_fit_rows: int = 100_000) -> np.ndarray:
    """Out-of-fold logistic-regression class scores (n x C logits).  Each
    fold's model is fitted on at most `max_fit_rows` rows of the other folds
    (a seeded subsample) so 1M rows stay fast."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = filled_matrix(ctx)
    y = ctx.codes
    n, C = len(y), len(ctx.classes)
    rng = np.random.default_rng([ctx.seed, 9101])
    fold = rng.permutation(n) % n_folds
    scores = np.zeros((n, C))
    for f in range(n_folds):
        train = np.flatnonzero(fold != f)
        if len(train) > max_fit_rows:
            train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
        test = np.flatnonzero(fold == f)
        present = np.unique(y[train])
        if len(present) < 2:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        model.fit(X[train], y[train])
        dec = model.decision_function(X[test])
        if dec.ndim == 1:
            full = np.zeros((len(test), 2))
            full[:, 1] = dec
            dec = full
        scores[np.ix_(test, present)] = dec
        missing = np.setdiff1d(np.arange(C), present)
        if len(missing):
            scores[np.ix_(test, missing)] = -np.inf
    return scores
