"""Exact copies of continuous values: a model-based test (near duplicates).

A permutation test (near_duplicates_density) cannot call a few exact copies
remarkable when the reference is small (three groups of 5 identical rows all
in an 80% batch: p ~ 0.8^15 ~ 0.035 whatever the data),
and a duplicate-free reference of 360 rows cannot exclude a duplicate rate
that explains them. Exact float copies are improbable only under a model:
if the recorded values are rounded from a continuous law, two rows with one
hash lie within rho0 = ||resolution||_2 of each other, and near-pair rates
scale like rho^m below r (m the intrinsic dimension), so the expected number
of exact pairs touching the batch is mu = pairs * pi(r) * (rho0 / r)^m', pi(r)
the pooled rate of pairs within r (Poisson upper bound at 1 - COPY_BETA),
m' = m / 2 (a safety factor on the estimated dimension). Markov: p_copy =
COPY_BETA + mu / D. It runs only when the radius comes from a continuous
distance distribution (quantile rule) and the reference holds no exact
copies of its own. It is NOT distribution-free: legitimately repeated
records the reference happens not to show fail it (measured: 0.5% of rows
resubmitted once, 80/20 splits: 31 of 40 clean splits below 0.05), so it is
reported in `copies` and `p_value_assuming_continuous` (Bonferroni with
the permutation test) and left out of `p_value`.

The same test judges one table alone in a self-check (`self_copy_test`,
reported in the summary, not gated: with no reference nothing separates
legitimately repeated records from a flood of copies).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from poison_expectations.core.signals.near_duplicates_model import default_radius, intrinsic_dimension

COPY_BETA = 1e-6  # error allowed to the upper bound of the pooled pair rate
BOUND_CONFIDENCE = 0.999  # the copy bound is reported when it holds with at least this confidence


def resolution(encoder, decimals: dict, X: np.ndarray) -> float:
    """rho0: the encoded distance two rows with one hash can at most be apart when
    their values were rounded from continuous ones: per numeric column its
    recording step 10^-d over the encoder's scale, per other encoded dimension
    the float32 spacing (the hash compares float32 encodings there)."""
    steps = []
    at = 0
    for plan in encoder.plans:
        width = plan.width()
        block = X[:, at:at + width]
        top = np.abs(block).max(axis=0) if len(block) else np.zeros(width, dtype=np.float32)
        step = np.spacing(top.astype(np.float32)).astype(np.float64)
        d = decimals.get(plan.name)
        if plan.kind == "numeric" and d is not None:
            step[0] = 10.0 ** -d / plan.scale
        steps.append(step)
        at += width
    return float(np.sqrt(np.sum(np.concatenate(steps) ** 2))) if steps else 0.0


def finest_step(encoder, decimals: dict) -> float:
    """The smallest encoded distance two distinct recorded rows can be apart: per
    numeric column its recording step 10^-d over the encoder's scale, 1 for a
    one-hot or boolean column; 0 (no grid) when any column has no recording
    step (unrounded floats, frequency encodings, embeddings)."""
    steps = []
    for plan in encoder.plans:
        d = decimals.get(plan.name)
        if plan.kind in ("onehot", "bool"):
            steps.append(1.0)
        elif plan.kind == "numeric" and d is not None and plan.scale > 0:
            steps.append(10.0 ** -d / plan.scale)
        else:
            return 0.0
    return float(min(steps)) if steps else 0.0


def continuity_rate(near_pairs: int, n: int, radius: float, radius_info: dict, rho0: float,
                    dimension: float | None) -> tuple[float | None, str | None]:
    """Upper bound (at 1 - COPY_BETA) on the chance that two rows are exact copies under
    the continuity model: the rate of pairs within r (non-exact pairs among n rows)
    scaled by (rho0 / r)^(m / 2); or None and why the model does not apply."""
    if radius_info.get("method") != "quantile" or radius <= 0:
        return None, "the radius does not come from a continuous distance distribution"
    if not dimension or dimension <= 0:
        return None, "no intrinsic dimension"
    if rho0 >= radius:
        return None, "the recording resolution is not below the radius"
    upper = stats.chi2.ppf(1.0 - COPY_BETA, 2 * (near_pairs + 1)) / 2.0
    return float(upper / (n * (n - 1) / 2.0) * (rho0 / radius) ** (dimension / 2.0)), None


def copy_test(near_pairs: int, n_b: int, n_r: int, group_batch: np.ndarray, group_ref: np.ndarray, totals: dict,
              radius: float, radius_info: dict, rho0: float, dimension: float | None) -> dict:
    """Exact copies touching the batch against the number a continuous law allows
    (module docstring); {"active": False, why} where the model does not apply.
    `near_pairs`: pooled non-exact pairs within r; `group_*`: rows per exact-copy group."""
    copies = totals["exact_batch_batch"] + totals["exact_batch_reference"]
    out = {"exact_pairs_touching_batch": copies, "resolution": rho0, "dimension": dimension}
    rate, why = continuity_rate(near_pairs, n_b + n_r, radius, radius_info, rho0, dimension)
    if why is None and totals["exact_reference_reference"] > 0:
        why = "the reference holds exact copies of its own"
    if why is not None:
        return {**out, "active": False, "why_inactive": why, "p_value": 1.0}
    expected = float(rate or 0.0) * (n_b * (n_b - 1) / 2.0 + n_b * n_r)
    p = 1.0 if copies == 0 else min(1.0, COPY_BETA + expected / copies)
    # with probability >= 1 - (expected + COPY_BETA) no two clean rows are exact copies: every group
    # holds at most one clean batch row, none when it holds a (trusted) reference row
    bound = int(np.where(group_ref > 0, group_batch, np.maximum(group_batch - 1, 0)).sum())
    confidence = float(max(0.0, 1.0 - expected - COPY_BETA))
    return {**out, "active": True, "expected_upper": float(expected), "p_value": float(p),
            "pair_rate_upper": rate, "bound_confidence": confidence,
            "copied_rows_lower_bound": bound if confidence >= BOUND_CONFIDENCE else None}


def self_copy_test(n: int, near_pairs: int, exact_pairs: int, copied_rows: int, radius: float, radius_info: dict,
                   rho0: float, dimension: float | None) -> dict:
    """Self-check: one table's exact copies against the continuity model alone. No
    reference can refute the model here, so legitimately repeated records in
    continuous data fail it too: reported, not gated."""
    out = {"exact_pairs": int(exact_pairs), "copied_rows": int(copied_rows), "resolution": rho0,
           "dimension": dimension}
    rate, why = continuity_rate(near_pairs, n, radius, radius_info, rho0, dimension)
    if why is not None:
        return {**out, "active": False, "why_inactive": why, "p_value": 1.0}
    expected = float(rate or 0.0) * n * (n - 1) / 2.0
    p = 1.0 if exact_pairs == 0 else min(1.0, COPY_BETA + expected / exact_pairs)
    return {**out, "active": True, "expected_upper": float(expected), "p_value": float(p),
            "copied_rows_lower_bound": int(copied_rows) if expected + COPY_BETA <= 1 - BOUND_CONFIDENCE else None}


def table_copies(nb, keys: np.ndarray, quantile: float, configured: float | None) -> dict:
    """What the self-check's copy test needs from one table, with exact copies left
    out of every k-NN list first (a table whose rows all have copies still has a
    distance distribution): radius and intrinsic dimension from the distances to
    rows with another hash, non-exact pairs within that radius, exact-copy pairs
    and the rows beyond the first of each exact-copy group."""
    codes, _ = pd.factorize(keys)
    sizes = np.bincount(codes).astype(np.float64)
    valid = nb.indices >= 0
    other = valid & (codes[np.where(valid, nb.indices, 0)] != codes[:, None])
    distinct = np.sort(np.where(other, nb.distances.astype(np.float64), np.inf), axis=1)
    finite = distinct[:, 0][np.isfinite(distinct[:, 0])]
    info: dict[str, Any] = {"method": "configured"}
    radius = float(configured) if configured is not None else 0.0
    if configured is None:
        radius, info = default_radius(finite, quantile)
    head = distinct[:, :max(3, nb.k // 2)]
    full_rows = np.isfinite(head).all(axis=1)
    fence = info.get("fence")
    info["intrinsic_dimension"] = intrinsic_dimension(head[full_rows], None if fence is None else float(fence))
    near = other & (nb.distances <= radius)
    src, pos = np.nonzero(near)
    dst = nb.indices[src, pos]
    lo, hi = np.minimum(src, dst).astype(np.int64), np.maximum(src, dst).astype(np.int64)
    return {"radius": float(radius), "radius_info": info, "near_pairs": int(len(np.unique(lo * len(keys) + hi))),
            "exact_pairs": int((sizes * (sizes - 1) / 2).sum()), "copied_rows": int((sizes[sizes >= 2] - 1).sum())}
