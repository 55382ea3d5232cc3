"""Copies of real rows added to the table: a flood of near-duplicates of a
few rows, and copies with a flipped label."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (Poisoned, attack_context, decimals, describe, feature_std,
                                              insert_rows, make_rows, n_added, numeric_matrix, other_class,
                                              round_to_precision)


def near_duplicate_flood(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_seeds: int = 3,
    noise: float = 0.02,
) -> Poisoned:
    """Flood of near-duplicates of ``n_seeds`` real rows (added rows).

    Seeds are drawn uniformly; the ``k`` new rows are split as evenly as
    possible among them.  Each copy's numeric feature j is
    ``seed_j + delta`` with ``delta ~ N(0, (noise * std_j / 3)^2)`` clipped to
    ``+-noise * std_j``, truncated toward zero to the column's observed
    decimal precision (integer columns stay integer), so
    ``|copy_j - seed_j| <= noise * std_j`` always holds.  Copies keep the
    seed's label and every other column; ids are new.
    details: ``{"seeds": [input positions], "seed_ids": [...], ...}``.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=105)
    n, k = len(ctx.frame), n_added(ctx)
    rng = ctx.rng
    n_seeds = int(min(max(1, n_seeds), n))
    seeds = np.sort(rng.choice(n, size=n_seeds, replace=False))
    base = seeds[np.arange(k) % n_seeds]
    X = numeric_matrix(ctx, base)
    std = feature_std(ctx)
    bound = noise * std
    delta = np.clip(rng.normal(size=X.shape) * (bound / 3.0)[None, :], -bound, bound)
    new_x = X.copy()
    for j, c in enumerate(ctx.features):
        d = decimals(ctx.frame[c])
        if d is None:
            new_x[:, j] = X[:, j] + delta[:, j]
        else:
            g = 10.0 ** (-d)
            cand = np.round(X[:, j] + np.trunc(delta[:, j] / g) * g, d)
            too_far = ~(np.abs(cand - X[:, j]) <= bound[j] * (1 + 1e-9))
            new_x[:, j] = np.where(too_far, X[:, j], cand)
    new = make_rows(ctx, base, new_x, None)
    out, is_poison, _ = insert_rows(ctx, new)
    seed_ids = (ctx.frame[ctx.id_column].iloc[seeds].tolist() if ctx.id_column else None)
    return Poisoned(
        out, is_poison,
        describe("near_duplicate_flood", f"near-copies of {n_seeds} rows (noise <= {noise} std) added", k, n + k),
        {"attack": "near_duplicate_flood", "seeds": seeds.tolist(), "seed_ids": seed_ids,
         "noise": noise, "n_poison": k, "rate": k / (n + k)},
    )


def conflicting_copies(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    noise: float = 0.005,
    exact_fraction: float = 0.5,
) -> Poisoned:
    """Copies of real rows with a flipped label (added rows).

    ``k`` distinct rows (with replacement only if ``k > n``) are copied; a
    random ``exact_fraction`` of the copies are exact, the rest get Gaussian
    noise of ``noise`` x each feature's std, rounded to the column's
    precision.  Every copy gets a random other class and a new id.  Only the
    copies are marked poison (their originals are clean rows).
    details: ``{"originals": [input positions of the copied rows], ...}``.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=106)
    n, C, k = len(ctx.frame), len(ctx.classes), n_added(ctx)
    rng = ctx.rng
    base = rng.choice(n, size=k, replace=k > n)
    X = numeric_matrix(ctx, base)
    noisy = rng.random(k) >= exact_fraction
    jitter = rng.normal(size=X.shape) * (noise * feature_std(ctx))[None, :]
    new_x = np.where(noisy[:, None], round_to_precision(ctx, X + jitter), X)
    to = other_class(ctx.codes[base], C, rng)
    new = make_rows(ctx, base, new_x, to)
    out, is_poison, _ = insert_rows(ctx, new)
    return Poisoned(
        out, is_poison,
        describe("conflicting_copies", "copies of real rows with flipped labels added", k, n + k),
        {"attack": "conflicting_copies", "originals": np.sort(base).tolist(), "n_exact": int((~noisy).sum()),
         "noise": noise, "n_poison": k, "rate": k / (n + k)},
    )
