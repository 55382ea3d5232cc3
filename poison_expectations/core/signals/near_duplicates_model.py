"""The near-duplicate signal's statistics: the default radius, the intrinsic
dimension, and the Borel-Gamma model of cluster sizes without copies
(near_duplicates.py has the method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import gammaln

FENCE_Z = 5.0  # robust lower fence, in robust standard deviations of log distance
MIN_POSITIVE_DISTANCES = 10  # fewer positive 1st-NN distances: only exact duplicates count
POISSON_CONFIDENCE = 0.95
TAIL_TERMS = 400  # Borel terms summed beyond the largest observed size
# Local density, and so a row's lambda, varies across the feature space; it is
# modelled as Gamma with this shape (1: exponential, coefficient of variation 1).
DENSITY_SHAPE = 1.0


# -- radius -------------------------------------------------------------------

def default_radius(d1: np.ndarray, quantile: float) -> tuple[float, dict]:
    """q-quantile of the positive 1st-NN distances above a robust lower fence."""
    d1 = np.asarray(d1, dtype=np.float64)
    positive = d1[d1 > 0]
    info = {"method": "quantile", "quantile": quantile, "rows": int(d1.size),
            "zero_distances": int(d1.size - positive.size)}
    if positive.size < MIN_POSITIVE_DISTANCES:
        info.update(method="exact_only", note=f"only {positive.size} rows have a positive 1st-NN distance")
        return 0.0, info
    logs = np.log(positive)
    median = float(np.median(logs))
    spread = 1.4826 * float(np.median(np.abs(logs - median)))
    if spread == 0:
        # over half the distances are one lattice step: near means closer than that step
        below = positive[positive < np.exp(median) * (1 - 1e-6)]
        radius = float(np.quantile(below, quantile)) if below.size else 0.0
        info.update(method="lattice", note="most 1st-NN distances are equal; radius kept below that step")
        return radius, info
    fence = median - FENCE_Z * spread
    kept = positive[logs >= fence]
    info.update(fence=float(np.exp(fence)), below_fence=int(positive.size - kept.size))
    return float(np.quantile(kept, quantile)), info


def intrinsic_dimension(distances: np.ndarray, fence: float | None, min_rows: int = 10) -> float | None:
    """Levina-Bickel MLE of the intrinsic dimension from k-NN distances, pooled
    as MacKay-Ghahramani suggest (mean of the inverse estimates). Rows whose
    1st-NN distance is below the fence (copies) or zero are left out."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 3:
        return None
    ok = np.all(d > 0, axis=1) & np.all(np.isfinite(d), axis=1)
    if fence is not None:
        ok &= d[:, 0] >= fence
    d = d[ok]
    if len(d) < min_rows:
        return None
    inverse = np.mean(np.log(d[:, -1:] / d[:, :-1]), axis=1)  # 1 / m_i
    mean_inverse = float(np.mean(inverse))
    return 1.0 / mean_inverse if mean_inverse > 0 else None

# -- the size model -----------------------------------------------------------

@dataclass
class SizeModel:
    """Borel(lambda) cluster sizes for a table of n rows without copies."""

    lam: float
    n: int
    alpha: float
    fitted_clusters: int
    fitted_rows: int
    scale: float
    radius: float = 0.0
    dimension: float | None = None  # intrinsic dimension; None: no tightness test

    @classmethod
    def fit(cls, clusters: int, n_fit: int, alpha: float, radius: float = 0.0, radius_info: dict | None = None,
            scale: float = 1.0) -> "SizeModel":
        """From the fitting table's number of clusters (of 2+ rows) and rows; `scale`:
        batch rows per fitted row, as density grows with the rows of the batch."""
        upper = stats.chi2.ppf(POISSON_CONFIDENCE, 2 * (clusters + 1)) / 2.0
        lam = min(1.0, 2.0 * upper / n_fit * scale)
        info = radius_info or {}
        # tightness needs a radius read off a continuous distance distribution
        dimension = info.get("intrinsic_dimension") if info.get("method") == "quantile" and radius > 0 else None
        return cls(lam, int(round(n_fit * scale)), alpha, clusters, n_fit, scale, float(radius), dimension)

    def log_expected(self, max_size: int, n: int, lam: float | None = None) -> np.ndarray:
        """log E[#clusters of size >= s] in n rows, for s = 0..max_size (index = s)."""
        t = np.arange(1, max_size + TAIL_TERMS + 1, dtype=np.float64)
        log_terms = log_mixed_borel(t, max(self.lam if lam is None else lam, 1e-300), DENSITY_SHAPE) - np.log(t)
        tail = np.logaddexp.accumulate(log_terms[::-1])[::-1]
        out = np.empty(max_size + 1)
        out[1:] = np.log(n) + tail[:max_size]
        out[0] = out[1]
        return out

    def log_expected_tight(self, sizes: np.ndarray, bottleneck: np.ndarray, n: int) -> np.ndarray:
        """log E[#clusters of size >= s that hold together within their bottleneck r_c],
        times the dyadic radii scanned between r_c and r; +inf where not applicable."""
        out = np.full(len(sizes), np.inf)
        if self.dimension is None or self.radius <= 0:
            return out
        tight = np.flatnonzero((bottleneck > 0) & (bottleneck < self.radius) & (sizes >= 2))
        for c in tight:
            ratio = bottleneck[c] / self.radius
            lam_c = self.lam * ratio ** self.dimension
            scales = 1.0 + np.log2(1.0 / ratio)
            out[c] = self.log_expected(int(sizes[c]), n, lam_c)[sizes[c]] + np.log(scales)
        return out

    def min_improbable_size(self, n: int) -> int:
        """Smallest cluster size whose expected count in n rows is below alpha."""
        size = 2
        while True:
            log_e = self.log_expected(size * 2, n)
            hits = np.flatnonzero(log_e[2:] < np.log(self.alpha))
            if hits.size:
                return int(hits[0] + 2)
            size *= 2

    def as_dict(self) -> dict:
        return {"model": "borel_gamma_mixture", "lambda": self.lam, "density_shape": DENSITY_SHAPE, "alpha": self.alpha,
                "fitted_on_clusters": self.fitted_clusters, "fitted_on_rows": self.fitted_rows,
                "density_scale": self.scale, "min_improbable_size": self.min_improbable_size(self.n),
                "intrinsic_dimension": self.dimension}


def log_mixed_borel(s: np.ndarray, lam: float, shape: float) -> np.ndarray:
    """log P(S = s) for Borel(L) cluster sizes with L ~ Gamma(shape, mean lam):
    s^(s-1)/s! (shape/lam)^shape Gamma(s-1+shape) / (Gamma(shape) (s + shape/lam)^(s-1+shape))."""
    rate = shape / lam
    return ((s - 1) * np.log(s) - gammaln(s + 1) + shape * np.log(rate) + gammaln(s - 1 + shape)
            - gammaln(shape) - (s - 1 + shape) * np.log(s + rate))


def allowed_size(model: SizeModel, max_cluster_size: int | None) -> int:
    """The configured limit, else the largest cluster size the model does not call improbable."""
    return model.min_improbable_size(model.n) - 1 if max_cluster_size is None else int(max_cluster_size)


def nearest_label_disagreement(table, neighbors) -> float | None:
    """Share of rows whose nearest neighbour carries another label (chance level of conflicts)."""
    if table.y is None:
        return None
    return float(np.mean(table.y[neighbors.indices[:, 0]] != table.y))
