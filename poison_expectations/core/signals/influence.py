"""Influence: rows the model leans on most, and rows that hurt their neighbours.

Two scored components, each per row and oriented so larger is worse:
- self-influence g^T H^-1 g of an L2-regularised logistic regression
  (Koh & Liang 2017), out of fold: the model that scores a row never saw it
  (see `influence_functions.CrossFit`);
- minus the KNN-Shapley value (Jia et al. 2019) of the row for the K-NN
  classifier, truncated to the shared neighbour graph (see `knn_shapley`).
Also reported, not scored: the held-out influence (the derivative of the
held-out loss when the row is up-weighted; against a reference, the loss
of the trusted reference under out-of-fold models trained on the batch) and
the row's leverage. In a self-check the held-out rows are exchangeable with
the training rows, so the held-out gradient is near zero and the held-out
influence is mostly noise (row-level AUROC 0.5-0.77 on boundary poisoning,
two-sided heavy tails); it is kept for inspection.

Scores and flags are normalised per class (`normalise`): the score is the
larger of the two components' class ranks; a row is flagged when a
component is over its cut, a robust z above `z_limit` in a self-check
(self-influence on a log scale) or above the reference's
`reference_quantile` of the same statistic against a reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals import knn_shapley
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.influence_functions import CrossFit
from poison_expectations.core.signals.base import per_class, plain as label
from poison_expectations.core.signals.normalise import Component, normalise, single_threaded_blas


class Influence(Signal):
    name = "influence"

    def __init__(self, k: int | None = None, n_folds: int = 5, l2: float = 1e-3, max_train_rows: int = 100_000,
                 exact_max_params: int = 400, shapley_k: int = 5, z_limit: float = 3.5,
                 reference_quantile: float = 0.999, random_state: int = 0):
        if n_folds < 2:
            raise InputError(f"influence: n_folds must be at least 2, got {n_folds}")
        if l2 <= 0:
            raise InputError(f"influence: l2 must be positive, got {l2}")
        if shapley_k < 1:
            raise InputError(f"influence: shapley_k must be at least 1, got {shapley_k}")
        if not 0.5 <= reference_quantile < 1:
            raise InputError(f"influence: reference_quantile must be in [0.5, 1), got {reference_quantile}")
        super().__init__(k=k, n_folds=n_folds, l2=l2, max_train_rows=max_train_rows,
                         exact_max_params=exact_max_params, shapley_k=shapley_k, z_limit=z_limit,
                         reference_quantile=reference_quantile, random_state=random_state)

    def run(self, analysis) -> SignalResult:
        y = analysis.require_labels()
        if analysis.n_classes < 2:
            raise InputError(f"label column '{analysis.roles.label_column}' has a single class; "
                             "influence needs two or more")
        p = self.params
        raw = self._self_check(analysis, y) if analysis.reference is None else self._against_reference(analysis, y)
        ref = analysis.reference
        components = [
            Component("self_influence", "self-influence", raw.self_influence, raw.self_influence_base,
                      transform="log"),
            Component("knn_shapley", "KNN-Shapley value", -raw.values,
                      None if raw.values_base is None else -raw.values_base),
        ]
        base_y = None if ref is None else ref.y
        normed = [normalise(c, y, base_y, analysis.n_classes, z_limit=p["z_limit"],
                            quantile=p["reference_quantile"]) for c in components]
        flags = np.logical_or.reduce([nm.flags for nm in normed])
        scores = np.max([nm.rank for nm in normed], axis=0)
        reasons = _reasons(flags, normed, components, raw.values, y, analysis.classes, p["reference_quantile"])
        info = raw.model_info
        summary = {
            "mode": "self" if ref is None else "reference",
            "model": {"kind": "logistic regression (sigmoid)" if analysis.n_classes == 2 else
                      "logistic regression (softmax)", "l2": p["l2"], **info,
                      "solver": "exact Hessian (Cholesky)" if info["exact"] else
                      "conjugate gradients (diagonal Hessian for per-row terms)"},
            "knn_shapley": {"K": min(p["shapley_k"], raw.graph.k), "M": raw.graph.k, "validation": raw.validation,
                            "exact_neighbours": bool(raw.graph.exact), "neighbour_recall": raw.graph.recall_estimate,
                            "truncation_error_bound_per_validation_point": 1.0 / raw.graph.k},
            "z_limit": p["z_limit"],
            "reference_quantile": p["reference_quantile"],
            "components": {c.name: {"flagged": int(nm.flags.sum()),
                                    "cuts": {label(analysis.classes[code]): cut for code, cut in nm.cuts.items()}}
                           for c, nm in zip(components, normed)},
            "per_class": per_class(flags, y, analysis.classes),
            "reference": None,
        }
        if ref is not None:
            ref_flags = np.logical_or.reduce([nm.baseline_flags for nm in normed])
            summary["reference"] = {"rows": int(len(ref.y)), "flagged": int(ref_flags.sum())}
        columns = {
            "influence_self": raw.self_influence,
            "influence_heldout": raw.heldout,
            "influence_leverage": raw.leverage,
            "influence_knn_shapley": raw.values,
        }
        return SignalResult(self.name, scores, flags, reasons, summary, columns)

    def _crossfit(self) -> CrossFit:
        p = self.params
        return CrossFit(n_folds=p["n_folds"], l2=p["l2"], max_train_rows=p["max_train_rows"],
                        exact_max_params=p["exact_max_params"], random_state=p["random_state"])

    def _self_check(self, analysis, y) -> "_Raw":
        """Out-of-fold influence on the batch; every row validates its neighbours."""
        K = self.params["shapley_k"]
        graph = analysis.neighbors("self", self.params["k"] or analysis.options.k)  # may use every core
        with single_threaded_blas():
            stats, _, info = self._crossfit().run(analysis.batch.X, y)
            prior = np.bincount(y, minlength=analysis.n_classes) / len(y)
            values = knn_shapley.self_values(graph.indices, y, K, prior)
        validation = {"points": "every batch row, for its k nearest other rows", "rows": int(len(y))}
        return _Raw(stats.self_influence, None, stats.heldout, stats.leverage, values, None, info, graph, validation)

    def _against_reference(self, analysis, y) -> "_Raw":
        """Models cross-fitted on the reference score the batch like a held-out
        reference fold; the reference rows validate the batch rows."""
        ref, K = analysis.reference, self.params["shapley_k"]
        k = self.params["k"] or analysis.options.k
        graph, ref_graph = analysis.neighbors("reference", k), analysis.reference_neighbors(k)
        crossfit = self._crossfit()
        with single_threaded_blas():
            ref_stats, stats, info = crossfit.run(ref.X, ref.y, score=(analysis.batch.X, y))
            # held-out influence on the trusted reference, models trained out of fold on the batch
            heldout = crossfit.run(analysis.batch.X, y, validation=(ref.X, ref.y))[0].heldout
            prior = np.bincount(ref.y, minlength=analysis.n_classes) / len(ref.y)
            values = knn_shapley.insertion_values(graph.indices, graph.distances, y, ref_graph.indices,
                                                  ref_graph.distances, ref.y, K, prior)
            base = knn_shapley.insertion_values(ref_graph.indices, ref_graph.distances, ref.y, ref_graph.indices,
                                                ref_graph.distances, ref.y, K, prior, query_is_table=True)
        validation = {"points": "reference rows among each batch row's k nearest reference rows",
                      "rows": int(len(ref.y))}
        return _Raw(stats.self_influence, ref_stats.self_influence, heldout, stats.leverage, values, base, info,
                    graph, validation)


@dataclass
class _Raw:
    """Raw per-row statistics of the batch (and the reference's baselines)."""

    self_influence: np.ndarray
    self_influence_base: np.ndarray | None
    heldout: np.ndarray
    leverage: np.ndarray
    values: np.ndarray  # KNN-Shapley
    values_base: np.ndarray | None
    model_info: dict
    graph: object  # the Neighbors the values came from
    validation: dict


def _reasons(flags, normed, components, values, y, classes, quantile):
    reasons = np.full(len(y), "", dtype=object)
    rows = np.flatnonzero(flags)
    if rows.size == 0:
        return reasons
    lowest = {}
    for c in np.unique(y[rows]):
        members = np.flatnonzero(y == c)
        lowest[c] = members[np.argmin(values[members])]
    pct = f"{quantile * 100:g}th percentile"
    for row in rows:
        cls = label(classes[y[row]])
        parts = []
        for comp, nm in zip(components, normed):
            if not nm.flags[row]:
                continue
            over_reference = nm.cuts[y[row]]["kind"] == "reference_quantile"
            if comp.name == "self_influence":
                text = f"self-influence {comp.values[row]:.3g}"
                text += (f" above the reference's {pct} for class {cls!r} ({nm.z[row]:.1f} robust-z)"
                         if over_reference else f", {nm.z[row]:.1f} robust-z above class {cls!r} (log scale)")
            else:
                text = f"KNN-Shapley value {values[row]:.3g}"
                text += (f" below the reference's {pct} for class {cls!r}" if over_reference
                         else f", {nm.z[row]:.1f} robust-z below class {cls!r}")
                if lowest.get(y[row]) == row:  # "most negative" only of a negative value
                    text += (f"; the most negative KNN-Shapley value in class {cls!r}" if values[row] < 0
                             else f"; the lowest KNN-Shapley value in class {cls!r}")
            parts.append(text)
        reasons[row] = "; ".join(parts)
    return reasons
