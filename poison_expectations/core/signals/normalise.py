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

The reference side is fitted once (`fit_baseline`: per class the centre,
scale, sorted values and cut, as plain data for a signal's state; the log
floor comes from the reference alone) and applied to any batch with
`normalise(..., baseline=...)`; a self-check normalises rows among
themselves. `baseline_ranks` ranks fitted rows' out-of-sample statistics
among the baseline exactly as a batch row is ranked (`reference_scores`).
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

    `values` are the rows'; `transform` names the stabilising map used for
    robust z ("log" for positive heavy-tailed statistics, "two_sided" for
    signed positions, "identity" otherwise).
    """

    name: str  # short key, e.g. "self_influence"
    label: str  # wording in reasons, e.g. "self-influence"
    values: np.ndarray
    transform: str = "identity"


@dataclass
class Normalised:
    """Per-row ranks, robust z, flags, and the per-class cuts of one component."""

    rank: np.ndarray  # [0, 1] per batch row
    z: np.ndarray  # robust z against the class baseline (transformed scale)
    flags: np.ndarray  # over the cut
    cuts: dict  # class code -> {"kind": "robust_z"|"reference_quantile", "value": float}


def _transform(values: np.ndarray, kind: str, floor: float) -> np.ndarray:
    if kind == "log":
        return np.log(np.maximum(values, floor))
    return values


def _log_floor(values: np.ndarray) -> float:
    """A tiny positive floor for logs: 1e-6 of the median positive value."""
    positive = values[(values > 0) & np.isfinite(values)]
    return float(np.median(positive)) * 1e-6 if positive.size else 1e-300


def _clean(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)


def _class_baseline(raw: np.ndarray, transformed: np.ndarray, two_sided: bool):
    """(centre, scale, the values ranked and cut) of one class's baseline rows."""
    center, scale = robust_location_scale(transformed)
    return center, scale, (np.abs(transformed - center) if two_sided else raw)


def fit_baseline(values: np.ndarray, y: np.ndarray, n_classes: int, *, transform: str, quantile: float) -> dict:
    """The per-class baseline of one component over the fitted rows (plain data).

    Per class: its rows' count, robust centre and scale (transformed
    scale), the sorted values a batch row is ranked among, and the `quantile`
    cut. `flags` marks the fitted rows over their class's cut (classes with
    at least MIN_BASELINE_ROWS rows; smaller ones are not used as baselines).
    """
    raw = _clean(values)
    floor = _log_floor(raw)
    t = _transform(raw, transform, floor)
    flags = np.zeros(len(raw), dtype=bool)
    classes: list = []
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        if rows.size == 0:
            classes.append(None)
            continue
        center, scale, ref_values = _class_baseline(raw[rows], t[rows], transform == "two_sided")
        cut = float(np.quantile(ref_values, quantile))
        if rows.size >= MIN_BASELINE_ROWS:
            flags[rows] = ref_values > cut
        classes.append({"rows": int(rows.size), "center": center, "scale": scale, "cut": cut,
                        "sorted": np.sort(ref_values)})
    return {"transform": transform, "floor": floor, "quantile": float(quantile), "classes": classes,
            "flags": flags}


def normalise(component: Component, y: np.ndarray, n_classes: int, *, z_limit: float,
              baseline: dict | None = None) -> Normalised:
    """Rank, robust z and flag each row against its class's baseline.

    With a fitted `baseline` (`fit_baseline`), a class with at least
    MIN_BASELINE_ROWS baseline rows is ranked and cut against them; any
    other class (and every class without a baseline: a self-check) against
    the rows' own class, with the robust z cut.
    """
    values = _clean(component.values)
    floor = _log_floor(values) if baseline is None else baseline["floor"]
    t_values = _transform(values, component.transform, floor)
    fitted = [] if baseline is None else baseline["classes"]
    n = len(values)
    rank, z, flags = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    cuts: dict = {}
    two_sided = component.transform == "two_sided"
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        entry = fitted[c] if c < len(fitted) else None
        use_reference = entry is not None and entry["rows"] >= MIN_BASELINE_ROWS
        if rows.size == 0 and not use_reference:
            continue
        if use_reference:
            assert entry is not None
            center, scale, ordered = entry["center"], entry["scale"], entry["sorted"]
        else:
            center, scale, own = _class_baseline(values[rows], t_values[rows], two_sided)
            ordered = np.sort(own)
        row_values = np.abs(t_values[rows] - center) if two_sided else values[rows]
        if rows.size:
            rank[rows] = np.searchsorted(ordered, row_values, side="right") / ordered.size
            z[rows] = np.abs(t_values[rows] - center) / scale if two_sided else (t_values[rows] - center) / scale
        if rows.size and entry is not None and not use_reference and entry["sorted"].size:
            # too few baseline rows to cut on, but the rank (the score conformal p-values compare with
            # the reference's `baseline_ranks`) is still taken among them: on their scale, and
            # independent of which other batch rows are scored with this one (a Spark chunk)
            ranked = np.abs(t_values[rows] - entry["center"]) if two_sided else values[rows]
            rank[rows] = np.searchsorted(entry["sorted"], ranked, side="right") / entry["sorted"].size
        if entry is not None and use_reference:
            flags[rows] = row_values > entry["cut"]
            cuts[c] = {"kind": "reference_quantile", "value": entry["cut"]}
        else:
            flags[rows] = z[rows] > z_limit
            cuts[c] = {"kind": "robust_z", "value": float(z_limit)}
    return Normalised(rank, z, flags, cuts)


def baseline_ranks(values: np.ndarray, y: np.ndarray, baseline: dict) -> np.ndarray:
    """Each row's rank among its class's fitted baseline values, computed as
    `normalise` ranks a batch row (0 for a class without a baseline), so
    that ranks of fitted rows and of batch rows are on one scale."""
    values = _clean(values)
    t = _transform(values, baseline["transform"], baseline["floor"])
    ranks = np.zeros(len(values))
    for c, entry in enumerate(baseline["classes"]):
        rows = np.flatnonzero(y == c)
        if entry is None or rows.size == 0:
            continue
        row_values = np.abs(t[rows] - entry["center"]) if baseline["transform"] == "two_sided" else values[rows]
        ranks[rows] = np.searchsorted(entry["sorted"], row_values, side="right") / entry["sorted"].size
    return ranks


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
