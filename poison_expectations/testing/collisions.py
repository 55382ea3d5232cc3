"""Clean-label feature collision: rows of another class that sit on top of
one target row, keeping their own (correct-looking) label (added rows)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (AttackContext, Poisoned, attack_context, describe, feature_std,
                                              filled_matrix, insert_rows, make_rows, n_added, other_class, plain,
                                              round_to_precision)


def clean_label_collision(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    target_index: int | None = None,
    base_label: Any = None,
    base_weight: float = 0.1,
    noise: float = 0.02,
) -> Poisoned:
    """Shafahi-style feature collision in raw feature space (added rows).

    A target row (``target_index``, a position in the input; random by
    default) of class ``t`` is chosen, and a base class ``b != t``
    (``base_label``; random by default).  Each new row starts from a random
    real row of class ``b`` and is perturbed to collide with the target: its
    features are ``target + base_weight * (base - target)`` (the minimiser
    of ``||x - target||^2 + beta ||x - base||^2`` with
    ``beta = base_weight / (1 - base_weight)``) plus Gaussian noise of
    ``noise`` x each feature's std, rounded to each column's precision.  It
    keeps the base row's label ``b`` and other columns (label "correct for
    its source"); ids are new.  Only the added rows are poison; the target
    itself is clean.
    details: target position in the input and output, its id, ``t``, ``b``.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=108)
    n, k = len(ctx.frame), n_added(ctx)
    rng = ctx.rng
    target_index, t, b = _target_and_base(ctx, target_index, base_label)
    pool = np.flatnonzero(ctx.codes == b)
    base = pool[rng.integers(0, len(pool), size=k)]
    X = filled_matrix(ctx)
    target_x = X[target_index]
    moved = target_x[None, :] + base_weight * (X[base] - target_x[None, :])
    moved += rng.normal(size=moved.shape) * (noise * feature_std(ctx))[None, :]
    moved = round_to_precision(ctx, moved)
    new = make_rows(ctx, base, moved, np.full(k, b))
    out, is_poison, positions = insert_rows(ctx, new)
    tl, bl = plain(ctx.classes[t]), plain(ctx.classes[b])
    return Poisoned(
        out, is_poison,
        describe("clean_label_collision",
                 f"class-{bl!r} rows colliding with target row {target_index} (class {tl!r}) added", k, n + k),
        {"attack": "clean_label_collision", "target_index": target_index,
         "target_position": int(positions[target_index]),
         "target_id": (ctx.frame[ctx.id_column].iloc[target_index] if ctx.id_column else None),
         "target_label": tl, "poison_label": bl, "base_weight": base_weight, "noise": noise,
         "target_features": {c: float(v) for c, v in zip(ctx.features, target_x, strict=True)},
         "n_poison": k, "rate": k / (n + k)},
    )


def _target_and_base(ctx: AttackContext, target_index: int | None, base_label: Any) -> tuple[int, int, int]:
    """The target row's position, its class code, and the base class code (random ones drawn in that order)."""
    n, C = len(ctx.frame), len(ctx.classes)
    if target_index is None:
        target_index = int(ctx.rng.integers(0, n))
    target_index = int(target_index)
    if not 0 <= target_index < n:
        raise ValueError(f"target_index must be in 0..{n - 1}")
    t = int(ctx.codes[target_index])
    if base_label is None:
        return target_index, t, int(other_class(np.array([t]), C, ctx.rng)[0])
    hits = np.flatnonzero(ctx.classes == base_label)
    if not len(hits) or hits[0] == t:
        raise ValueError(f"base_label {base_label!r} must be a class other than the target's")
    return target_index, t, int(hits[0])
