"""Tabular backdoor: a fixed value pattern on a few features, with the
target label (rows stay in place)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (AttackContext, Poisoned, as_dtype, attack_context, copy_frame,
                                              describe, label_values, n_inplace, plain)


def backdoor(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_trigger_features: int = 3,
    target_label: Any = None,
    quantile_range: tuple[float, float] = (0.85, 0.95),
) -> Poisoned:
    """Tabular backdoor: a fixed value pattern on a few features, relabelled.

    ``n_trigger_features`` feature columns are drawn at random; each gets a
    trigger value = an observed value of that column at a random quantile in
    ``quantile_range`` (so it is plausible alone and already rounded like
    the column).  ``round(rate * n)`` rows drawn from the non-target classes
    (capped by their number) get all trigger values and the target label.
    ``target_label`` defaults to the least frequent class (ties: the larger
    label).  Rows stay in place.
    details: ``{"trigger": {col: value}, "target": label, ...}``.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column, stream=104)
    n = len(ctx.frame)
    if not 1 <= n_trigger_features <= len(ctx.features):
        raise ValueError(f"n_trigger_features must be in 1..{len(ctx.features)}")
    target_code = _target_code(ctx, target_label)
    trigger = _trigger(ctx, n_trigger_features, quantile_range)
    pool = np.flatnonzero(ctx.codes != target_code)
    k = min(n_inplace(ctx), len(pool))
    idx = np.sort(ctx.rng.choice(pool, size=k, replace=False))
    out = copy_frame(ctx)
    for c, value in trigger.items():
        arr = out[c].to_numpy(copy=True)
        arr[idx] = value
        out[c] = as_dtype(arr, ctx.frame[c])
    codes = ctx.codes.copy()
    codes[idx] = target_code
    out[label_column] = label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    target_py = plain(ctx.classes[target_code])
    return Poisoned(
        out, is_poison,
        describe("backdoor", f"{len(trigger)}-feature trigger {trigger} relabelled to {target_py!r}", k, n),
        {"attack": "backdoor", "trigger": trigger, "target": target_py, "n_poison": k, "rate": k / n},
    )


def _target_code(ctx: AttackContext, target_label: Any) -> int:
    """The target class's code: `target_label`'s, else the least frequent class's (ties: the larger)."""
    if target_label is None:
        counts = np.bincount(ctx.codes, minlength=len(ctx.classes))
        return int(len(counts) - 1 - np.argmin(counts[::-1]))
    hits = np.flatnonzero(ctx.classes == target_label)
    if not len(hits):
        raise ValueError(f"target_label {target_label!r} is not a class of {ctx.label_column!r}")
    return int(hits[0])


def _trigger(ctx: AttackContext, n_trigger_features: int, quantile_range: tuple[float, float]) -> dict[str, Any]:
    """Random trigger columns, each with an observed value at a random quantile in `quantile_range`."""
    picks = np.sort(ctx.rng.choice(len(ctx.features), n_trigger_features, replace=False))
    lo, hi = quantile_range
    trigger: dict[str, Any] = {}
    for c in [ctx.features[i] for i in picks]:
        v = ctx.frame[c].to_numpy(dtype=float, na_value=np.nan)
        v = v[np.isfinite(v)]
        value = float(np.quantile(v, ctx.rng.uniform(lo, hi), method="inverted_cdf"))
        trigger[c] = int(round(value)) if pd.api.types.is_integer_dtype(ctx.frame[c]) else value
    return trigger
