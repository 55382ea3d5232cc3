"""Influence: rows the model leans on most, and rows that hurt their neighbours.

Two scored components, each per row and oriented so larger is worse:
- self-influence g^T H^-1 g of an L2-regularised logistic regression
  (Koh & Liang 2017), out of fold: the model that scores a row never saw it
  (see `influence_crossfit.CrossFit`);
- minus the KNN-Shapley value (Jia et al. 2019) of the row for the K-NN
  classifier, truncated to the shared neighbour graph (see `knn_shapley`).
Also reported, not scored: the held-out influence (the derivative of the
held-out loss when the row is up-weighted: the loss of the held-out fold
of the model that scores the row) and the row's leverage. In a self-check the held-out rows are exchangeable with
the training rows, so the held-out gradient is near zero and the held-out
influence is mostly noise (row-level AUROC 0.5-0.77 on boundary poisoning,
two-sided heavy tails); it is kept for inspection.

Scores and flags are normalised per class (`normalise`): the score is the
larger of the two components' class ranks; a row is flagged when a
component is over its cut, a robust z above `z_limit` in a self-check
(self-influence on a log scale) or above the reference's
`reference_quantile` of the same statistic against a reference.

Fit once, score many: `fit` keeps the fold models (`influence_crossfit`),
what KNN-Shapley needs of the fitted rows' neighbour graph (each list's
label agreements and distances, and the class prior), the per-class
baselines of both components, and the fitted rows' out-of-fold statistics;
`score` values batch rows with them and never refits. `reference_scores`
are the fitted rows' out-of-fold statistics ranked among the baselines as
a batch row is ranked.
"""

from __future__ import annotations

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals import knn_shapley
from poison_expectations.core.params.influence import INFLUENCE
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.base import per_class, plain as label
from poison_expectations.core.signals.influence_crossfit import CrossFit, InfluenceStats
from poison_expectations.core.signals.normalise import (Component, baseline_ranks, fit_baseline, normalise,
                                                        single_threaded_blas)

SELF_VALIDATION = "every batch row, for its k nearest other rows"
REFERENCE_VALIDATION = "reference rows among each batch row's k nearest reference rows"


class Influence(Signal):
    name = "influence"
    calibration = "class"
    declaration = INFLUENCE

    def fit(self, analysis) -> State:
        """Fold models, graph summary, baselines and out-of-fold stats of the fitted rows."""
        y = _labels(analysis, analysis.fitted.y)
        p = self.params
        k = p["k"] or analysis.options.k
        plus = analysis.fitted_neighbors(k + 1)  # may use every core; M + 1: a row's t-lists without it
        graph = analysis.fitted_neighbors(plus.k - 1)  # k, unless the table has at most k + 1 rows
        with single_threaded_blas():
            stats, crossfit = self._crossfit().fit(analysis.fitted.X, y)
            prior = np.bincount(y, minlength=analysis.n_classes) / len(y)
            # the self-check values every row by all rows that list it; a batch row (and so the
            # baseline it is ranked among) by its own k nearest fitted rows
            values = knn_shapley.self_values(graph.indices, y, p["shapley_k"], prior)
            ties = knn_shapley.tie_draws(analysis.fitted.X, graph.k, p["random_state"])
            as_new = knn_shapley.reference_as_new_values(plus.indices, plus.distances, y, graph.k, p["shapley_k"],
                                                         prior, ties)
        components = _components(stats.self_influence, as_new)
        baselines = {c.name: fit_baseline(c.values, y, analysis.n_classes, transform=c.transform,
                                          quantile=p["reference_quantile"]) for c in components}
        ranks = [baseline_ranks(c.values, y, baselines[c.name]) for c in components]
        return {
            "n_classes": int(analysis.n_classes),
            "crossfit": crossfit,
            "fitted_stats": {"self_influence": stats.self_influence, "heldout": stats.heldout,
                             "leverage": stats.leverage, "knn_shapley": values, "knn_shapley_as_new": as_new},
            "shapley": {"prior": prior, "agree": knn_shapley.agreement(graph.indices, y),
                        "distances": graph.distances},
            "graph": {"k": int(graph.k), "exact": bool(graph.exact), "recall": float(graph.recall_estimate)},
            "baselines": baselines,
            "reference_scores": np.max(ranks, axis=0),
        }

    def score(self, state: State, analysis) -> SignalResult:
        """Batch rows against the fitted reference: the stored fold models and
        the reference rows as validation points for KNN-Shapley."""
        y = _labels(analysis, analysis.batch.y)
        p = self.params
        graph = analysis.neighbors("reference", p["k"] or analysis.options.k)
        shapley = state["shapley"]
        with single_threaded_blas():
            stats = self._crossfit().score(state["crossfit"], analysis.batch.X, y)
            values = knn_shapley.new_row_values(graph.indices, graph.distances, y, shapley["agree"],
                                                shapley["distances"], analysis.reference.y, p["shapley_k"],
                                                shapley["prior"], knn_shapley.tie_draws(analysis.batch.X, graph.k,
                                                                                        p["random_state"]))
        components = _components(stats.self_influence, values)
        normed = [normalise(c, y, analysis.n_classes, z_limit=p["z_limit"], baseline=state["baselines"][c.name])
                  for c in components]
        flagged = np.logical_or.reduce([state["baselines"][c.name]["flags"] for c in components])
        reference = {"rows": int(len(flagged)), "flagged": int(flagged.sum())}
        graph_info = {"k": graph.k, "exact": graph.exact, "recall": graph.recall_estimate}
        validation = {"points": REFERENCE_VALIDATION, "rows": reference["rows"]}
        return self._result(analysis, y, stats, values, components, normed, state["crossfit"]["info"],
                            graph_info, validation, reference)

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted rows' out-of-fold stats, normalised among themselves."""
        y = _labels(analysis, analysis.fitted.y)
        fitted = state["fitted_stats"]
        stats = InfluenceStats(fitted["self_influence"], fitted["heldout"], fitted["leverage"])
        components = _components(stats.self_influence, fitted["knn_shapley"])
        normed = [normalise(c, y, analysis.n_classes, z_limit=self.params["z_limit"]) for c in components]
        validation = {"points": SELF_VALIDATION, "rows": int(len(y))}
        return self._result(analysis, y, stats, fitted["knn_shapley"], components, normed,
                            state["crossfit"]["info"], state["graph"], validation, None)

    def _result(self, analysis, y, stats, values, components, normed, info, graph, validation,
                reference) -> SignalResult:
        p = self.params
        flags = np.logical_or.reduce([nm.flags for nm in normed])
        scores = np.max([nm.rank for nm in normed], axis=0)
        reasons = _reasons(flags, normed, components, values, y, analysis.classes, p["reference_quantile"])
        summary = {
            "mode": "self" if reference is None else "reference",
            "model": {"kind": "logistic regression (sigmoid)" if analysis.n_classes == 2 else
                      "logistic regression (softmax)", "l2": p["l2"], **info,
                      "solver": "exact Hessian (Cholesky)" if info["exact"] else
                      "conjugate gradients (diagonal Hessian for per-row terms)"},
            "knn_shapley": {"K": min(p["shapley_k"], graph["k"]), "M": graph["k"], "validation": validation,
                            "exact_neighbours": bool(graph["exact"]), "neighbour_recall": graph["recall"],
                            "truncation_error_bound_per_validation_point": 1.0 / graph["k"]},
            "z_limit": p["z_limit"],
            "reference_quantile": p["reference_quantile"],
            "components": {c.name: {"flagged": int(nm.flags.sum()),
                                    "cuts": {label(analysis.classes[code]): cut for code, cut in nm.cuts.items()}}
                           for c, nm in zip(components, normed, strict=True)},
            "per_class": per_class(flags, y, analysis.classes),
            "reference": reference,
        }
        columns = {
            "influence_self": stats.self_influence,
            "influence_heldout": stats.heldout,
            "influence_leverage": stats.leverage,
            "influence_knn_shapley": values,
        }
        return SignalResult(self.name, scores, flags, reasons, summary, columns)

    def _crossfit(self) -> CrossFit:
        p = self.params
        return CrossFit(n_folds=p["n_folds"], l2=p["l2"], max_train_rows=p["max_train_rows"],
                        exact_max_params=p["exact_max_params"], random_state=p["random_state"])


def _labels(analysis, y: np.ndarray | None) -> np.ndarray:
    """The label codes influence needs (two or more classes)."""
    if y is None:
        raise InputError("this signal needs a label column (--label)")
    if analysis.n_classes < 2:
        raise InputError(f"label column '{analysis.roles.label_column}' has a single class; "
                         "influence needs two or more")
    return y


def _components(self_influence: np.ndarray, values: np.ndarray) -> list[Component]:
    """The two scored statistics, oriented so larger is worse."""
    return [Component("self_influence", "self-influence", self_influence, transform="log"),
            Component("knn_shapley", "KNN-Shapley value", -values)]


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
        for comp, nm in zip(components, normed, strict=True):
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
