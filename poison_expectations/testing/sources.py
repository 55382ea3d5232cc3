"""A bad contributor: labels flipped only inside one or a few small sources
(rows stay in place)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from poison_expectations.testing.base import (Poisoned, attack_context, copy_frame, describe, label_values,
                                              n_inplace, other_class)


def bad_source(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_bad_sources: int = 1,
    source_column: str = "source",
    max_source_share: float = 0.08,
) -> Poisoned:
    """Flip labels only within ``n_bad_sources`` sources.

    The bad sources are drawn at random among sources holding at most
    ``max_source_share`` of the rows (ValueError if fewer are eligible).
    ``round(rate * n)`` rows, chosen uniformly among the bad sources' rows,
    get a random other class; when the bad sources hold fewer rows than
    that, every one of their rows is flipped and the realised rate is lower
    (``details["capped"]`` is True).  Rows stay in place.
    """
    ctx = attack_context(frame, label_column, rate, random_state, feature_columns, id_column,
                         stream=107, need_numeric=False)
    if source_column not in ctx.frame.columns:
        raise ValueError(f"source column {source_column!r} not in frame")
    n, C = len(ctx.frame), len(ctx.classes)
    src_codes, src_names = pd.factorize(ctx.frame[source_column], sort=True)
    counts = np.bincount(src_codes[src_codes >= 0], minlength=len(src_names))
    eligible = np.flatnonzero(counts <= max_source_share * n)
    if len(eligible) < n_bad_sources:
        raise ValueError(
            f"only {len(eligible)} source(s) hold at most {max_source_share:.0%} of rows; "
            f"cannot pick {n_bad_sources}"
        )
    chosen = np.sort(ctx.rng.choice(eligible, size=n_bad_sources, replace=False))
    pool = np.flatnonzero(np.isin(src_codes, chosen))
    want = n_inplace(ctx)
    k = min(want, len(pool))
    idx = np.sort(ctx.rng.choice(pool, size=k, replace=False))
    codes = ctx.codes.copy()
    codes[idx] = other_class(codes[idx], C, ctx.rng)
    out = copy_frame(ctx)
    out[label_column] = label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    names = [str(src_names[i]) for i in chosen]
    return Poisoned(
        out, is_poison,
        describe("bad_source", f"labels flipped inside source(s) {', '.join(names)}", k, n),
        {"attack": "bad_source", "bad_sources": names, "n_poison": k, "rate": k / n,
         "source_rows": int(len(pool)), "flip_fraction_within": k / max(len(pool), 1),
         "capped": bool(k < want)},
    )
