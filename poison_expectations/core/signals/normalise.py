"""Per-class normalisation shared by the influence and outlier signals.

Each signal computes a few raw per-row statistics ("components"), oriented
so that larger means more suspicious. A row is compared with the rows of
its own (given) class only, against a *baseline*: the reference rows of
that class when a reference is given (their statistics computed the same
way, so a clean batch is exchangeable with them), else the batch's own rows
of that class. Three normalisations:

- rank: the share of the class's baseline values at or below the row's
  value (an empirical CDF in [0, 1]); the row score of a signal is the
  largest of its components' ranks, so it is rank-based, per class and
  free of each statistic's units;
- robust z (self-check cut): the modified z-score of Iglewicz & Hoaglin
  (1993), (v - median) / (1.4826 MAD), on the component's stabilising
  transform (log for positive, heavy-tailed statistics); they recommend
  |z| > 3.5 to call an outlier. A "two_sided" component (a signed
  position, e.g. the slab) is suspicious in both directions: its centre and
  scale come from the signed values and it is ranked, cut and scored by
  |v - centre|. When MAD is 0 the mean absolute deviation
  times 1.2533 stands in (both estimate the standard deviation of a normal);
- reference quantile (batch-against-reference cut): the baseline class's
  `q` quantile of the raw statistic, e.g. its 99.9th percentile, so a clean
  batch exceeds it at the nominal rate 1 - q.

A class with fewer than MIN_BASELINE_ROWS reference rows falls back to the
batch's own rows and the robust z cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits


MAD_TO_SD = 1.4826  # 1 / Phi^-1(0.75)
MEANAD_TO_SD = 1.2533  # sqrt(pi / 2)
MIN_BASELINE_ROWS = 20



def robust_location_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and a robust standard deviation (MAD, else mean abs deviation)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    center = float(np.median(values))
    deviations = np.abs(values - center)
    scale = MAD_TO_SD * float(np.median(deviations))
    if scale <= 0:
        scale = MEANAD_TO_SD * float(deviations.mean())
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return center, scale


@dataclass
class Component:
    """One raw statistic of a signal, larger = more suspicious.

    `values` are the batch rows'; `baseline` the reference rows' (None in a
    self-check). `transform` names the stabilising map used for robust z
    ("log" for positive heavy-tailed statistics, "two_sided" for signed
    positions, "identity" otherwise).
    """

    name: str  # short key, e.g. "self_influence"
    label: str  # wording in reasons, e.g. "self-influence"
    values: np.ndarray
    baseline: np.ndarray | None = None
    transform: str = "identity"


@dataclass
class Normalised:
    """Per-row ranks, robust z, flags, and the per-class cuts of one component."""

    rank: np.ndarray  # [0, 1] per batch row
    z: np.ndarray  # robust z against the class baseline (transformed scale)
    flags: np.ndarray  # over the cut
    baseline_flags: np.ndarray | None  # reference rows over the same cut (None in a self-check)
    cuts: dict  # class code -> {"kind": "robust_z"|"reference_quantile", "value": float}


def _transform(values: np.ndarray, kind: str, floor: float) -> np.ndarray:
    if kind == "log":
        return np.log(np.maximum(values, floor))
    return values


def _log_floor(*arrays: np.ndarray | None) -> float:
    """A tiny positive floor for logs: 1e-6 of the median positive value."""
    parts = [a[(a > 0) & np.isfinite(a)] for a in arrays if a is not None]
    positive = np.concatenate(parts) if parts else np.empty(0)
    return float(np.median(positive)) * 1e-6 if positive.size else 1e-300


def normalise(component: Component, y: np.ndarray, base_y: np.ndarray | None, n_classes: int, *,
              z_limit: float, quantile: float) -> Normalised:
    """Rank, robust z and flag each batch row against its class's baseline."""
    values = np.nan_to_num(np.asarray(component.values, dtype=np.float64), nan=0.0)
    base = None if component.baseline is None else np.nan_to_num(
        np.asarray(component.baseline, dtype=np.float64), nan=0.0)
    floor = _log_floor(values, base)
    t_values = _transform(values, component.transform, floor)
    t_base = None if base is None else _transform(base, component.transform, floor)
    n = len(values)
    rank = np.zeros(n)
    z = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    base_flags = None if base is None else np.zeros(len(base), dtype=bool)
    cuts: dict = {}
    two_sided = component.transform == "two_sided"
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        base_rows = np.flatnonzero(base_y == c) if base is not None else np.empty(0, dtype=np.int64)
        use_reference = base_rows.size >= MIN_BASELINE_ROWS
        if rows.size == 0 and not use_reference:
            continue
        ref_t = t_base[base_rows] if use_reference else t_values[rows]
        center, scale = robust_location_scale(ref_t)
        if two_sided:  # rank, cut and score the distance from the centre
            ref_values = np.abs(ref_t - center)
            row_values = np.abs(t_values[rows] - center)
        else:
            ref_values = base[base_rows] if use_reference else values[rows]
            row_values = values[rows]
        if rows.size:
            ordered = np.sort(ref_values)
            rank[rows] = np.searchsorted(ordered, row_values, side="right") / ordered.size
            z[rows] = np.abs(t_values[rows] - center) / scale if two_sided else (t_values[rows] - center) / scale
        if use_reference:
            cut = float(np.quantile(ref_values, quantile))
            flags[rows] = row_values > cut
            base_flags[base_rows] = ref_values > cut
            cuts[c] = {"kind": "reference_quantile", "value": cut}
        else:
            flags[rows] = z[rows] > z_limit
            cuts[c] = {"kind": "robust_z", "value": float(z_limit)}
    return Normalised(rank, z, flags, base_flags, cuts)



def class_of(y: np.ndarray | None, n: int) -> np.ndarray:
    """Label codes, or a single pseudo-class 0 for unlabelled tables."""
    return np.zeros(n, dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)


def single_threaded_blas():
    """A context with one BLAS thread. The influence and outlier maths is
    many small dense products (chunks of rows times tens of parameters), for
    which BLAS threads cost more than they save, and on a machine shared
    with other jobs they thrash (measured: 0.4 s single-threaded against
    3-7 s threaded for 3,000 rows on a loaded 2-core host)."""
    return threadpool_limits(limits=1, user_api="blas")
