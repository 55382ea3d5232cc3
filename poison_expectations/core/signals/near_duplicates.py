"""Near-duplicate clusters: floods of copies and copies with conflicting labels.

Method (docs/near_duplicates.md has the full story):
- Exact duplicates: every row gets a 64-bit hash of its feature values after
  normalising precision: numeric columns are rounded to the column's observed
  decimals (at most 6, measured on the fitting table: the reference when given,
  else the batch); other encoded values (one-hot, frequency, unrounded floats,
  embeddings) are hashed as their float32 encoding.
- Near duplicates: two rows are joined when one is among the other's k nearest
  neighbours (the shared graph, `analysis.neighbors`) at distance <= r in the
  encoded (robust-standardised) space. Clusters are the connected components
  of these edges plus the exact-hash groups: O(n k), never O(n^2).
- Default radius r: the q-quantile (q = 0.1%) of the fitting table's
  1st-nearest-neighbour distances, over the rows that are not themselves
  near-duplicates: distances of 0 and those below a robust lower fence (log
  distance under median - 5 * 1.4826 * MAD) are left out first, so that a
  flood of copies cannot pull r down into the flood itself.
- Improbable size: without copies, near-duplicate clusters of a sparse random
  geometric graph grow like a Poisson(lambda) branching process, so a row's
  cluster size is Borel(lambda) distributed; lambda varies with local density,
  taken as Gamma(shape 1) around its mean. The mean lambda (near-duplicate
  partners per row) is estimated from the fitting table's number of
  clusters (2 x clusters / rows, with a 95% Poisson upper bound), counting
  each cluster once so a few huge clusters barely move it. A cluster of size
  s is improbable when the expected number of clusters of size >= s in the
  batch, n * sum_{t>=s} Borel(t) / t, is below `size_alpha`; that also bounds
  the chance of any false alarm by size_alpha.
- Improbable tightness: a cluster that holds together at a radius r_c far
  below r (its bottleneck, the longest edge of its minimum spanning tree) is
  judged at r_c too. Near-neighbour counts grow like r^m (m the intrinsic
  dimension, Levina-Bickel MLE on the fitting table's k-NN distances), so
  lambda(r_c) = lambda * (r_c / r)^m; the expected count is multiplied by the
  number of dyadic radii between r_c and r (a scan over radii). A few copies
  can be a flood in a small table, where no size alone is improbable.
- Conflicting labels: a cluster whose members (and, against a reference, the
  reference rows they near-duplicate) carry two or more labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.special import gammaln

from poison_expectations.core.errors import InputError
from poison_expectations.core.features import _as_numeric
from poison_expectations.core.params.near_duplicates import NEAR_DUPLICATES
from poison_expectations.core.signals.base import Signal, SignalResult, plain

FENCE_Z = 5.0  # robust lower fence, in robust standard deviations of log distance
MIN_POSITIVE_DISTANCES = 10  # fewer positive 1st-NN distances: only exact duplicates count
MAX_DECIMALS = 6
POISSON_CONFIDENCE = 0.95
REPORTED_CLUSTERS = 20
CONSOLE_CLUSTERS = 5
EXAMPLE_IDS = 5
TAIL_TERMS = 400  # Borel terms summed beyond the largest observed size
TINY = 1e-300  # edge weight of exact copies in the sparse graph (an explicit 0 would be no edge)
# Local density, and so a row's lambda, varies across the feature space; it is
# modelled as Gamma with this shape (1: exponential, coefficient of variation 1).
DENSITY_SHAPE = 1.0


@dataclass
class NearDuplicateResult(SignalResult):
    """SignalResult plus per-cluster arrays (index = cluster_id) for the expectations."""

    cluster_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cluster_conflicting: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cluster_suspicious: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class NearDuplicates(Signal):
    name = "near_duplicate"
    declaration = NEAR_DUPLICATES

    def run(self, analysis) -> SignalResult:
        p = self.params
        batch, ref = analysis.batch, analysis.reference
        if batch.n < 2:
            raise InputError("near duplicates: the batch needs at least 2 rows")
        fit = ref if ref is not None else batch
        fit_nb = analysis.reference_neighbors(p["k"]) if ref is not None else analysis.neighbors("self", p["k"])
        if p["radius"] is None:
            radius, radius_info = default_radius(fit_nb.distances[:, 0], p["radius_quantile"])
        else:
            radius, radius_info = float(p["radius"]), {"method": "configured"}
        radius_info["intrinsic_dimension"] = intrinsic_dimension(fit_nb.distances, radius_info.get("fence"))
        decimals = observed_decimals(fit.frame, analysis.encoder)
        batch_keys = row_keys(batch, analysis.encoder, decimals)
        batch_groups = components(batch.n, analysis.neighbors("self", p["k"]), radius, batch_keys)

        reference_view = None
        if ref is not None:
            ref_keys = row_keys(ref, analysis.encoder, decimals)
            ref_groups = components(ref.n, fit_nb, radius, ref_keys)
            model = SizeModel.fit(ref_groups, ref.n, p["size_alpha"], radius, radius_info,
                                  scale=max(1.0, batch.n / ref.n))
            ref_model = SizeModel.fit(ref_groups, ref.n, p["size_alpha"], radius, radius_info)
            ref_report = describe(ref_groups, ref, None, ref_model, p["max_cluster_size"], analysis.classes)
            matches = reference_matches(batch, ref, batch_keys, ref_keys,
                                        analysis.neighbors("reference", p["k"]), radius)
            reference_view = (ref_report, matches)
        else:
            model = SizeModel.fit(batch_groups, batch.n, p["size_alpha"], radius, radius_info)
        report = describe(batch_groups, batch, reference_view[1] if reference_view else None, model,
                          p["max_cluster_size"], analysis.classes)
        disagreement = nearest_label_disagreement(fit, fit_nb)
        return self._result(analysis, report, model, radius, radius_info, reference_view, disagreement)

    # -- output -------------------------------------------------------------------
    def _result(self, analysis, report: "ClusterReport", model: "SizeModel", radius, radius_info,
                reference_view, disagreement: float | None) -> SignalResult:
        batch = analysis.batch
        cid = report.row_cluster
        flags = report.row_flags
        reasons = report.reasons(batch, analysis.classes, reference_view[1] if reference_view else None,
                                 analysis.reference)
        summaries = report.cluster_summaries(batch, analysis.classes, REPORTED_CLUSTERS,
                                             reference_view[1] if reference_view else None, analysis.reference)
        ref_summary = None
        if reference_view is not None:
            ref_report = reference_view[0]
            ref_summary = {
                "rows": int(analysis.reference.n),
                "clusters": ref_report.n_clusters,
                "largest_cluster": ref_report.largest,
                "suspicious_rows": ref_report.suspicious_rows,
                "suspicious_clusters": ref_report.n_suspicious,
                "conflicting_clusters": ref_report.n_conflicting,
                "batch_rows_matching_reference": int((reference_view[1].count > 0).sum()),
                "batch_rows_conflicting_with_reference": int(reference_view[1].conflict.sum()),
            }
        summary = {
            "k": self.params["k"],
            "radius": float(radius),
            "radius_rule": radius_info,
            "exact_duplicate_rows": report.exact_duplicate_rows,
            "clusters": report.n_clusters,
            "rows_in_clusters": report.rows_in_clusters,
            "largest_cluster": report.largest,
            "size_model": model.as_dict(),
            "max_cluster_size": self.params["max_cluster_size"],
            "allowed_cluster_size": allowed_size(model, self.params["max_cluster_size"]),
            "suspicious_clusters": report.n_suspicious,
            "suspicious_rows": report.suspicious_rows,
            "suspicious_share": report.suspicious_rows / batch.n,
            "improbable_clusters": int(report.improbable.sum()),
            "conflicting_clusters": report.n_conflicting,
            "nearest_label_disagreement": disagreement,
            "expected_conflicting_clusters": report.expected_conflicts(disagreement),
            "conflicting_rows": int(report.conflicting[cid[cid >= 0]].sum()) if report.n_clusters else 0,
            "cluster_summaries": summaries,
            "reference": ref_summary,
            "console_lines": console_lines(summaries, batch.n),
        }
        return NearDuplicateResult(self.name, report.row_scores, flags, reasons, summary,
                                   columns={"cluster_id": cid}, cluster_sizes=report.sizes,
                                   cluster_conflicting=report.conflicting, cluster_suspicious=report.suspicious)


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


# -- exact keys -------------------------------------------------------------------

def observed_decimals(frame: pd.DataFrame, encoder) -> dict[str, int]:
    """Decimals (0..6) each numeric feature column is recorded with; absent = unrounded."""
    out = {}
    for plan in encoder.plans:
        if plan.kind != "numeric" or plan.datetime:
            continue
        values, _ = _as_numeric(frame[plan.name], plan.name)
        if values is None:
            continue
        finite = values[np.isfinite(values)]
        for d in range(MAX_DECIMALS + 1):
            scaled = finite * 10.0 ** d
            if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
                out[plan.name] = d
                break
    return out


def row_keys(table, encoder, decimals: dict[str, int]) -> np.ndarray:
    """uint64 hash per row of the precision-normalised feature values."""
    parts = []
    at = 0
    X = table.X + np.float32(0.0)  # -0.0 -> 0.0
    for plan in encoder.plans:
        width = plan.width()
        block = X[:, at:at + width]
        d = decimals.get(plan.name)
        if plan.kind == "numeric" and d is not None:
            values, _ = _as_numeric(table.frame[plan.name], plan.name)
            scaled = values * 10.0 ** d
            ok = np.isfinite(scaled) & (np.abs(scaled) < 2.0 ** 53)
            codes = np.where(ok, np.round(np.where(ok, scaled, 0.0)), 0.0).astype(np.int64)
            # outside the exact range (or missing): fall back to the encoded value
            codes = np.where(ok, codes, block[:, 0].view(np.int32).astype(np.int64) - 2 ** 62)
            parts.append(codes)
            if width > 1:
                parts.append(block[:, 1:].view(np.int32).astype(np.int64).ravel())
        else:
            parts.extend(block.view(np.int32).astype(np.int64).T)
        at += width
    frame = pd.DataFrame({i: part for i, part in enumerate(parts)})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


# -- clusters ---------------------------------------------------------------------

@dataclass
class Groups:
    """Connected components over near-duplicate edges and exact-hash groups."""

    labels: np.ndarray  # component per row
    sizes: np.ndarray  # rows per component
    exact_shared: np.ndarray  # bool per row: another row has the same hash
    bottleneck: np.ndarray  # per component: longest edge of its minimum spanning tree (0: exact copies)

    @property
    def n_clusters(self) -> int:
        return int((self.sizes >= 2).sum())


def components(n: int, neighbors, radius: float, keys: np.ndarray) -> Groups:
    near = neighbors.distances <= radius
    near &= neighbors.indices >= 0
    src, pos = np.nonzero(near)
    dst = neighbors.indices[src, pos]
    codes, uniques = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(uniques))
    first = np.full(len(uniques), -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(n)[::-1]  # first row holding each hash
    shared = counts[codes] >= 2
    exact_src = np.flatnonzero(shared)
    src = np.concatenate([src, exact_src])
    dst = np.concatenate([dst, first[codes[exact_src]]])
    weight = np.concatenate([neighbors.distances[near], np.zeros(len(exact_src))])
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keep = lo != hi
    lo, hi, weight = lo[keep], hi[keep], weight[keep]
    order = np.lexsort((weight, hi, lo))  # per pair, the shortest edge first
    lo, hi, weight = lo[order], hi[order], weight[order]
    first_of_pair = np.ones(len(lo), dtype=bool)
    first_of_pair[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    lo, hi, weight = lo[first_of_pair], hi[first_of_pair], weight[first_of_pair]
    # csgraph drops explicit zeros, so exact copies get the smallest positive weight
    graph = sparse.coo_matrix((np.maximum(weight, TINY), (lo, hi)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    tree = minimum_spanning_tree(graph).tocoo()
    bottleneck = np.zeros(len(sizes))
    np.maximum.at(bottleneck, labels[tree.row], np.where(tree.data <= TINY, 0.0, tree.data))
    return Groups(labels, sizes, shared, bottleneck)


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
    def fit(cls, groups: Groups, n_fit: int, alpha: float, radius: float = 0.0, radius_info: dict | None = None,
            scale: float = 1.0) -> "SizeModel":
        clusters = groups.n_clusters
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


# -- batch against reference ----------------------------------------------------

@dataclass
class ReferenceMatches:
    """Per batch row: reference rows within r, and one with a different label."""

    count: np.ndarray  # reference near-duplicates found (capped at k for the kNN part)
    conflict: np.ndarray  # bool: a reference near-duplicate carries another label
    conflict_row: np.ndarray  # reference row index of that near-duplicate, -1 if none
    first_row: np.ndarray  # some matching reference row, -1 if none


def reference_matches(batch, ref, batch_keys, ref_keys, neighbors, radius) -> ReferenceMatches:
    n = batch.n
    near = (neighbors.distances <= radius) & (neighbors.indices >= 0)
    count = near.sum(axis=1)
    first_row = np.where(near.any(axis=1), neighbors.indices[np.arange(n), near.argmax(axis=1)], -1)
    conflict = np.zeros(n, dtype=bool)
    conflict_row = np.full(n, -1, dtype=np.int64)
    # exact matches: every reference row with the same hash, not only the k nearest
    ref_frame = pd.DataFrame({"key": ref_keys, "row": np.arange(ref.n)})
    if ref.y is not None:
        ref_frame["y"] = ref.y
    grouped = ref_frame.groupby("key", sort=False)
    exact = pd.DataFrame({"key": batch_keys}).merge(
        grouped["row"].agg(["size", "first"]).reset_index(), on="key", how="left")
    exact_count = exact["size"].fillna(0).to_numpy(dtype=np.int64)
    count = np.maximum(count, exact_count)
    first_row = np.where(first_row >= 0, first_row, exact["first"].fillna(-1).to_numpy(dtype=np.int64))
    if batch.y is not None and ref.y is not None:
        y = batch.y
        differs = near & (ref.y[neighbors.indices] != y[:, None])
        knn_conflict = differs.any(axis=1)
        conflict |= knn_conflict
        conflict_row = np.where(knn_conflict, neighbors.indices[np.arange(n), differs.argmax(axis=1)], -1)
        # per hash: the first row, and the first row whose label differs from it
        firsts = ref_frame.drop_duplicates("key")[["key", "row", "y"]]
        other = ref_frame.merge(firsts, on="key", suffixes=("", "_first"))
        other = other[other["y"] != other["y_first"]].drop_duplicates("key")[["key", "row", "y"]]
        table = firsts.merge(other, on="key", how="left", suffixes=("_a", "_b"))
        hit = pd.DataFrame({"key": batch_keys}).merge(table, on="key", how="left")
        row_a = hit["row_a"].fillna(-1).to_numpy(dtype=np.int64)
        y_a = hit["y_a"].fillna(-1).to_numpy(dtype=np.int64)
        row_b = hit["row_b"].fillna(-1).to_numpy(dtype=np.int64)
        exact_other = np.where((row_a >= 0) & (y_a != y), row_a, np.where((row_a >= 0) & (row_b >= 0), row_b, -1))
        conflict_row = np.where(conflict_row >= 0, conflict_row, exact_other)
        conflict |= exact_other >= 0
    return ReferenceMatches(count, conflict, conflict_row, first_row)


# -- per-cluster findings ------------------------------------------------------------

@dataclass
class ClusterReport:
    """Clusters of one table: compact ids (0 = largest), stats and verdicts."""

    row_cluster: np.ndarray  # compact cluster id per row, -1 when in no cluster
    sizes: np.ndarray  # table rows per compact cluster
    n_labels: np.ndarray
    n_sources: np.ndarray
    reference_rows: np.ndarray  # members with a reference near-duplicate
    conflicting: np.ndarray
    improbable: np.ndarray
    over_limit: np.ndarray
    log_expected: np.ndarray  # log E[#clusters of size >= s] per cluster
    exact_duplicate_rows: int
    row_flags: np.ndarray
    row_scores: np.ndarray
    alpha: float
    limit: int | None
    bottleneck: np.ndarray  # per cluster: the radius it holds together at
    judged_tight: np.ndarray  # per cluster: its expected count comes from the tightness test

    @property
    def n_clusters(self) -> int:
        return int(len(self.sizes))

    @property
    def suspicious(self) -> np.ndarray:
        return self.conflicting | self.improbable | self.over_limit

    @property
    def n_suspicious(self) -> int:
        return int(self.suspicious.sum())

    @property
    def n_conflicting(self) -> int:
        return int(self.conflicting.sum())

    @property
    def suspicious_rows(self) -> int:
        return int(self.sizes[self.suspicious].sum())

    @property
    def rows_in_clusters(self) -> int:
        return int(self.sizes.sum())

    @property
    def largest(self) -> int:
        return int(self.sizes.max()) if len(self.sizes) else 1

    def expected_conflicts(self, disagreement: float | None) -> float:
        """Conflicting clusters expected by chance: a cluster of s rows (a reference
        match counts as one more) conflicts with probability 1 - (1 - p)^(s - 1), p the
        fitting table's nearest-neighbour label disagreement; improbable clusters excluded."""
        if disagreement is None or not self.n_clusters:
            return 0.0
        rows = self.sizes + (self.reference_rows > 0)
        chance = 1.0 - (1.0 - disagreement) ** np.maximum(rows - 1, 0)
        return float(chance[~self.improbable & ~self.over_limit].sum())

    def members(self) -> list[np.ndarray]:
        """Row indices of each compact cluster (one sort, no per-cluster scan)."""
        rows = np.flatnonzero(self.row_cluster >= 0)
        rows = rows[np.argsort(self.row_cluster[rows], kind="stable")]
        return np.split(rows, np.cumsum(self.sizes)[:-1]) if len(self.sizes) else []

    def reasons(self, table, classes, matches: ReferenceMatches | None, ref) -> np.ndarray:
        n = len(self.row_cluster)
        reasons = np.full(n, "", dtype=object)
        texts = np.full(self.n_clusters, "", dtype=object)
        members = self.members()
        for c in np.flatnonzero(self.suspicious):
            texts[c] = self._cluster_reason(c, table, classes, members[c])
        in_cluster = self.row_flags & (self.row_cluster >= 0)
        reasons[in_cluster] = texts[self.row_cluster[in_cluster]]
        if matches is not None:
            for row in np.flatnonzero(matches.conflict):
                r = matches.conflict_row[row]
                text = (f"near-copy of reference row {plain(ref.ids[r])!r} labelled "
                        f"{plain(classes[ref.y[r]])!r}, own label {plain(classes[table.y[row]])!r}")
                reasons[row] = f"{reasons[row]}; {text}" if reasons[row] else text
        return reasons

    def _cluster_reason(self, c, table, classes, members) -> str:
        size = int(self.sizes[c])
        why = []
        if self.conflicting[c]:
            labels = label_counts(table, classes, members) if members is not None else {}
            why.append(f"conflicting labels {labels}" if labels and len(labels) > 1
                       else "labels conflicting with reference near-copies")
        if self.improbable[c]:
            what = (f"improbably tight (within distance {self.bottleneck[c]:.3g})" if self.judged_tight[c]
                    else "improbable size")
            why.append(f"{what} (expected {np.exp(self.log_expected[c]):.2g} such clusters "
                       f"without copies, alpha {self.alpha:g})")
        if self.over_limit[c]:
            why.append(f"over the limit of {self.limit} rows")
        return f"near-duplicate cluster {c} of {size} rows: " + ", ".join(why)

    def cluster_summaries(self, table, classes, count: int, matches: ReferenceMatches | None = None,
                          ref=None) -> list[dict]:
        """The `count` largest suspicious clusters, then the largest others."""
        order = np.lexsort((np.arange(self.n_clusters), -self.sizes, ~self.suspicious))[:count]
        all_members = self.members()
        out = []
        for c in order:
            members = all_members[c]
            entry = {
                "cluster_id": int(c),
                "size": int(self.sizes[c]),
                "suspicious": bool(self.suspicious[c]),
                "conflicting_labels": bool(self.conflicting[c]),
                "improbable_size": bool(self.improbable[c]),
                "improbably_tight": bool(self.improbable[c] and self.judged_tight[c]),
                "bottleneck_distance": float(self.bottleneck[c]),
                "over_limit": bool(self.over_limit[c]),
                "expected_clusters_this_large": float(np.exp(self.log_expected[c])),
                "labels": label_counts(table, classes, members),
                "sources": source_counts(table, members),
                "distinct_sources": int(self.n_sources[c]),
                "rows_matching_reference": int(self.reference_rows[c]),
                "reference_labels": _reference_labels(matches, ref, classes, members),
                "example_ids": [plain(v) for v in table.ids[members[:EXAMPLE_IDS]]],
            }
            out.append(entry)
        return out


def describe(groups: Groups, table, matches: ReferenceMatches | None, model: SizeModel,
             limit: int | None, classes) -> ClusterReport:
    n = table.n
    in_cluster = groups.sizes[groups.labels] >= 2
    if matches is not None:
        in_cluster |= matches.count > 0  # a batch row and the reference rows it copies
    comps = np.unique(groups.labels[in_cluster])
    comp_sizes = groups.sizes[comps]
    order = np.lexsort((comps, -comp_sizes))
    compact = np.full(len(groups.sizes), -1, dtype=np.int64)
    compact[comps[order]] = np.arange(len(comps))
    row_cluster = np.where(in_cluster, compact[groups.labels], -1)
    n_c = len(comps)
    members = np.flatnonzero(row_cluster >= 0)
    cid = row_cluster[members]
    sizes = np.bincount(cid, minlength=n_c)
    n_labels = _distinct_per_cluster(cid, table.y[members] if table.y is not None else None, n_c)
    n_sources = _distinct_per_cluster(cid, pd.factorize(table.sources[members])[0]
                                      if table.sources is not None else None, n_c)
    conflicting = n_labels >= 2
    reference_rows = np.zeros(n_c, dtype=np.int64)
    if matches is not None:
        reference_rows = np.bincount(cid, weights=matches.count[members] > 0, minlength=n_c).astype(np.int64)
        conflicting |= np.bincount(cid, weights=matches.conflict[members], minlength=n_c) > 0
    max_size = int(sizes.max()) if n_c else 1
    log_e_by_size = model.log_expected(max_size, n)
    log_e = log_e_by_size[sizes] if n_c else np.zeros(0)
    bottleneck = np.zeros(n_c)
    bottleneck[compact[comps]] = groups.bottleneck[comps]
    log_e_tight = model.log_expected_tight(sizes, bottleneck, n)
    tight = (log_e_tight < log_e) & (log_e >= np.log(model.alpha))  # tightness decided it
    log_e = np.minimum(log_e, log_e_tight)
    log_alpha = np.log(model.alpha)
    improbable = (log_e < log_alpha) & (sizes >= 2)
    over_limit = sizes > limit if limit is not None else np.zeros(n_c, dtype=bool)
    suspicious = conflicting | improbable | over_limit
    flags = np.zeros(n, dtype=bool)
    flags[members] = suspicious[cid]
    scores = np.zeros(n)
    size_score = np.clip(0.5 * log_e / log_alpha, 0.0, 1.0) * (sizes >= 2)
    if limit is not None:
        size_score = np.where(over_limit, np.maximum(size_score, 0.5 + 0.5 * np.minimum(1.0, (sizes - limit) / limit)),
                              size_score)
    scores[members] = size_score[cid]
    if table.y is not None:
        own = _own_label_share(cid, table.y[members], n_c)
        conflict_score = np.where(conflicting[cid], 0.5 + 0.5 * (1.0 - own), 0.0)
        if matches is not None:
            conflict_score = np.where(matches.conflict[members], np.maximum(conflict_score, 0.75), conflict_score)
        scores[members] = np.maximum(scores[members], conflict_score)
    if matches is not None:
        flags |= matches.conflict
    return ClusterReport(row_cluster, sizes, n_labels, n_sources, reference_rows, conflicting, improbable,
                         over_limit, log_e, int(groups.exact_shared.sum()), flags, scores, model.alpha, limit,
                         bottleneck, tight)


def _distinct_per_cluster(cid: np.ndarray, values: np.ndarray | None, n_c: int) -> np.ndarray:
    if values is None or n_c == 0:
        return np.ones(n_c, dtype=np.int64) if values is None else np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.stack([cid, values.astype(np.int64)]), axis=1)
    return np.bincount(pairs[0], minlength=n_c)


def _own_label_share(cid: np.ndarray, y: np.ndarray, n_c: int) -> np.ndarray:
    """Per member: the share of its cluster carrying its own label."""
    pair = pd.Series(np.ones(len(cid))).groupby([cid, y]).transform("size").to_numpy()
    return pair / np.bincount(cid, minlength=n_c)[cid]


def _reference_labels(matches: ReferenceMatches | None, ref, classes, members) -> dict:
    """Labels of the reference rows the members copy (a conflicting one where there is one)."""
    if matches is None or ref is None or ref.y is None:
        return {}
    rows = np.where(matches.conflict_row[members] >= 0, matches.conflict_row[members], matches.first_row[members])
    rows = rows[rows >= 0]
    if not len(rows):
        return {}
    codes, counts = np.unique(ref.y[rows], return_counts=True)
    return {plain(classes[c]): int(k) for c, k in zip(codes, counts)}


def label_counts(table, classes, members) -> dict:
    if table.y is None or members is None or len(members) == 0:
        return {}
    codes, counts = np.unique(table.y[members], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {plain(classes[codes[i]]): int(counts[i]) for i in order}


def source_counts(table, members, top: int = 5) -> dict:
    if table.sources is None or len(members) == 0:
        return {}
    values, counts = np.unique(table.sources[members], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return {str(values[i]): int(counts[i]) for i in order}


def console_lines(summaries: list[dict], n_rows: int) -> list[str]:
    suspicious = [s for s in summaries if s["suspicious"]][:CONSOLE_CLUSTERS]
    if not suspicious:
        return []
    lines = ["Largest suspicious near-duplicate clusters (id: rows, labels, sources, why, example ids):"]
    for s in suspicious:
        why = [w for w, on in (("conflicting labels", s["conflicting_labels"]),
                               ("improbable size", s["improbable_size"]),
                               ("over size limit", s["over_limit"])) if on]
        share = 100.0 * s["size"] / n_rows
        sources = f", sources {s['sources']}" if s["sources"] else ""
        ref = (f", {s['rows_matching_reference']} of them near-copy reference rows labelled {s['reference_labels']}"
               if s["rows_matching_reference"] else "")
        ids = ", ".join(map(str, s["example_ids"]))
        lines.append(f"  cluster {s['cluster_id']}: {s['size']} rows ({share:.3g}%), labels {s['labels']}"
                     f"{sources}{ref}; {' + '.join(why)}; e.g. {ids}")
    return lines
