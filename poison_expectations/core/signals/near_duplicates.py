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

Fit and score: `fit` learns from the fitted table (the reference, or the
batch in a self-check) the rounding precision, the radius, the cluster count
the size model starts from, the fitted rows' hashes and the fitted table's
own clusters, whose row scores are `reference_scores`. `score` clusters a
batch and matches it against the reference with that state;
`score_fitted` (the self-check) reports the fitted table's own clusters.
Against a reference, `score` also sets `batch_test` and `pvalues`: batch and
reference density compared at one pooled radius by a label-permutation test
(near_duplicates_density), with a model-based test for exact copies of
continuous values reported beside it; a self-check reports that copy test
in `summary["exact_copy_test"]`.
Modules: near_duplicates_graph (hashes, clusters, reference matches),
near_duplicates_model (radius, size model), near_duplicates_clusters
(per-cluster verdicts and reports), near_duplicates_density (the density test),
near_duplicates_copies (the exact-copy test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.near_duplicates import NEAR_DUPLICATES
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.near_duplicates_clusters import ClusterReport, console_lines, describe
from poison_expectations.core.signals.near_duplicates_copies import (finest_step, resolution, self_copy_test,
                                                                     table_copies)
from poison_expectations.core.signals.near_duplicates_density import density_test
from poison_expectations.core.signals.near_duplicates_graph import (
    components, observed_decimals, reference_matches, row_keys)
from poison_expectations.core.signals.near_duplicates_model import (
    SizeModel, allowed_size, default_radius, intrinsic_dimension, nearest_label_disagreement)

REPORTED_CLUSTERS = 20
GRID_TOLERANCE = 1e-3  # float32 distances: a radius equal to a recording step


@dataclass
class NearDuplicateResult(SignalResult):
    """SignalResult plus per-cluster arrays (index = cluster_id) for the expectations."""

    cluster_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cluster_conflicting: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cluster_suspicious: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class NearDuplicates(Signal):
    name = "near_duplicate"
    declaration = NEAR_DUPLICATES

    # -- fit ----------------------------------------------------------------------------
    def fit(self, analysis) -> State:
        """Radius, rounding precision, the fitted rows' hashes, and the fitted
        table's own clusters judged by a size model fitted on them."""
        p = self.params
        table = analysis.fitted
        if table.n < 2:
            raise InputError(f"near duplicates: the {'batch' if analysis.reference is None else 'reference'} "
                             "needs at least 2 rows")
        nb = analysis.fitted_neighbors(p["k"])
        radius, radius_info = self._radius(nb.distances)
        decimals = observed_decimals(table.frame, analysis.encoder)
        keys = row_keys(table, analysis.encoder, decimals)
        groups = components(table.n, nb, radius, keys)
        model = SizeModel.fit(groups.n_clusters, table.n, p["size_alpha"], radius, radius_info)
        report = describe(groups, table, None, model, p["max_cluster_size"], analysis.classes)
        copies = table_copies(nb, keys, p["radius_quantile"], p["radius"])
        copies["resolution"] = resolution(analysis.encoder, decimals, table.X)
        return {"radius": radius, "radius_info": radius_info, "decimals": decimals, "keys": keys, "copies": copies,
                "clusters": groups.n_clusters, "rows": int(table.n),
                "disagreement": nearest_label_disagreement(table, nb),
                "report": report.as_state(), "reference_scores": report.row_scores}

    def _radius(self, distances: np.ndarray) -> tuple[float, dict]:
        """The configured radius, else the robust quantile rule; and the intrinsic dimension."""
        if self.params["radius"] is None:
            radius, info = default_radius(distances[:, 0], self.params["radius_quantile"])
        else:
            radius, info = float(self.params["radius"]), {"method": "configured"}
        info["intrinsic_dimension"] = intrinsic_dimension(distances, info.get("fence"))
        return radius, info

    # -- score ----------------------------------------------------------------------------
    def score(self, state: State, analysis) -> SignalResult:
        """The batch's own clusters, judged by the fitted size model scaled to
        the batch, plus its rows' near-copies among the reference rows."""
        p = self.params
        batch, ref = analysis.batch, analysis.require_reference()
        if batch.n < 2:
            raise InputError("near duplicates: the batch needs at least 2 rows")
        radius, radius_info = state["radius"], dict(state["radius_info"])
        keys = row_keys(batch, analysis.encoder, state["decimals"])
        groups = components(batch.n, analysis.neighbors("self", p["k"]), radius, keys)
        model = SizeModel.fit(state["clusters"], state["rows"], p["size_alpha"], radius, radius_info,
                              scale=max(1.0, batch.n / state["rows"]))
        matches = reference_matches(batch, ref, keys, state["keys"], analysis.neighbors("reference", p["k"]), radius)
        report = describe(groups, batch, matches, model, p["max_cluster_size"], analysis.classes)
        reference_view = (ClusterReport.from_state(state["report"]), matches)
        result = self._result(analysis, report, model, radius, radius_info, reference_view, state["disagreement"])
        result.pvalues, result.batch_test = density_test(
            analysis.neighbors("self", p["k"]), analysis.neighbors("reference", p["k"]),
            analysis.reference_neighbors(p["k"]), keys, state["keys"], quantile=p["radius_quantile"],
            configured=p["radius"], rho0=state["copies"]["resolution"],
            dimension=radius_info.get("intrinsic_dimension"), seed=p["random_state"], deepen=analysis.search_rows)
        result.summary["density_test"] = result.batch_test
        return result

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted table's own clusters, as fit judged them.

        Two self-check facts for the gates (summary): `improbable_rows`, the rows
        of clusters the clean size model calls improbable (or over the limit):
        conflicting labels alone are judged against chance by the conflict
        expectation, not counted against max_share, since clean data with
        label noise and repeated rows has them; and `recorded_on_grid`: no two
        distinct recorded rows are closer than the radius (every column's
        recording step is at least r), so near duplicates are repeats of
        recorded values, the grain of the data, and the cluster-size model of
        a continuous law does not hold."""
        radius, radius_info = state["radius"], dict(state["radius_info"])
        model = SizeModel.fit(state["clusters"], state["rows"], self.params["size_alpha"], radius, radius_info)
        report = ClusterReport.from_state(state["report"])
        result = self._result(analysis, report, model, radius, radius_info, None, state["disagreement"])
        c = state["copies"]
        result.summary["exact_copy_test"] = self_copy_test(
            state["rows"], c["near_pairs"], c["exact_pairs"], c["copied_rows"], c["radius"], c["radius_info"],
            c["resolution"], c["radius_info"].get("intrinsic_dimension"))
        improbable = report.improbable | report.over_limit
        result.summary["improbable_rows"] = int(report.sizes[improbable].sum())
        step = finest_step(analysis.encoder, state["decimals"])
        result.summary["recorded_on_grid"] = bool(step > 0 and step >= radius * (1 - GRID_TOLERANCE))
        return result

    # -- output -------------------------------------------------------------------
    def _result(self, analysis, report: "ClusterReport", model: "SizeModel", radius, radius_info,
                reference_view, disagreement: float | None) -> SignalResult:
        batch = analysis.batch
        cid = report.row_cluster.copy()  # the result's own arrays: a fitted state's stay untouched
        flags = report.row_flags.copy()
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
                                   columns={"cluster_id": cid}, cluster_sizes=report.sizes.copy(),
                                   cluster_conflicting=report.conflicting.copy(), cluster_suspicious=report.suspicious)
