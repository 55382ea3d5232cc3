"""Class-conditional outliers: rows far from their own class.

Three components per row, each compared with the rows of the same class:
- sphere: distance to the class centroid (Steinhardt et al. 2017);
- slab: distance along the direction toward another class's centroid;
- feature detector: ECOD by default (IForest as an option), one detector
  per class, fitted on that class's reference rows (else the batch's).
See `geometry` and `feature_detectors` for the formulas. Everything is
fitted on the reference when one is given, so the reference rows' own
statistics are the per-class baseline; a self-check fits on the batch.

Normalisation (`normalise`): the row score is the largest of the
components' class ranks; a row is flagged when a component is over its
cut: a robust z above `z_limit` in a self-check (sphere and ECOD on a log
scale, as both are positive and right-skewed; the slab two-sided, by its
absolute deviation from the class's median position) or above the
reference's `reference_quantile` against a reference. Without a label column every row
is one class (the slab then does not apply).

Fit once, score many: `fit` keeps the class centroids, one fitted detector
per class (see `feature_detectors` for what is stored), the per-class
baselines and the fitted rows' in-sample statistics (the self-check
and the cuts use these, as before). `reference_scores` rank each fitted
row's cross-fitted statistics (centroids and detectors fitted on the other
OOF_FOLDS - 1 folds, so the row is scored as a new batch row is) among the
baselines, exactly as `score` ranks a batch row.
"""

from __future__ import annotations

import numpy as np

from poison_expectations.core.params.outliers import OUTLIERS
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.base import per_class, plain as label
from poison_expectations.core.signals.feature_detectors import ecod_apply, ecod_fit, iforest_apply, iforest_fit
from poison_expectations.core.signals.geometry import centroids, nearest_other, sphere_slab
from poison_expectations.core.signals.influence_crossfit import stratified_folds
from poison_expectations.core.signals.normalise import (Component, baseline_ranks, class_of, fit_baseline,
                                                        normalise, single_threaded_blas)

TRANSFORMS = {"sphere": "log", "slab": "two_sided", "detector": "log"}
OOF_FOLDS = 5  # folds of the cross-fitted reference_scores
# An out-of-fold IForest is fitted on at most this many of its class's rows
# (seeded sample): as many as its 100 trees of 256 rows draw. Fitting on all
# of them would only score them all again for the contamination offset.
OOF_FOREST_ROWS = 100 * 256


class Outliers(Signal):
    name = "outlier"
    calibration = "class"
    declaration = OUTLIERS

    def fit(self, analysis) -> State:
        """Centroids, detectors, baselines and the fitted rows' own statistics."""
        fitted = analysis.fitted
        labelled, n_classes = _classes(analysis)
        y = class_of(fitted.y, fitted.n)
        names = ["sphere", "slab", "detector"] if labelled and n_classes > 1 else ["sphere", "detector"]
        with single_threaded_blas():
            means, present = centroids(fitted.X, y, n_classes)
            detectors = self._fit_detectors(fitted.X, y, n_classes)
            stats = _statistics(fitted.X, y, means, present, detectors, own=True)
            held_out = self._out_of_fold(fitted.X, y, n_classes)
        q = self.params["reference_quantile"]
        baselines = {name: fit_baseline(stats[name], y, n_classes, transform=TRANSFORMS[name], quantile=q)
                     for name in names}
        ranks = [baseline_ranks(held_out[name], y, baselines[name]) for name in names]
        return {"detector": self.params["detector"], "labelled": labelled, "n_classes": n_classes,
                "components": names, "means": means, "present": present, "detectors": detectors,
                "fitted_stats": {name: stats[name] for name in names},
                "out_of_fold_stats": {name: held_out[name] for name in names},
                "baselines": baselines, "reference_scores": np.max(ranks, axis=0)}

    def score(self, state: State, analysis) -> SignalResult:
        """Batch rows against the stored centroids, detectors and baselines."""
        batch = analysis.batch
        _, n_classes = _classes(analysis)
        y = class_of(batch.y, batch.n)
        means, present = _padded(state, n_classes)
        with single_threaded_blas():
            stats = _statistics(batch.X, y, means, present, state["detectors"], own=False)
        flagged = np.logical_or.reduce([state["baselines"][name]["flags"] for name in state["components"]])
        reference = {"rows": int(len(flagged)), "flagged": int(flagged.sum())}
        return self._result(analysis, state, stats, means, present, reference)

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted rows' statistics, normalised among themselves."""
        return self._result(analysis, state, state["fitted_stats"], state["means"], state["present"], None)

    def _result(self, analysis, state, stats, means, present, reference) -> SignalResult:
        p = self.params
        labelled, n_classes = _classes(analysis)
        classes = analysis.classes if labelled else np.array(["(all rows)"], dtype=object)
        y = class_of(analysis.batch.y, analysis.batch.n)
        kind = state["detector"]
        components = [Component(name if name != "detector" else kind, _LABELS.get(name, f"{kind.upper()} "
                                "feature-outlier score"), np.nan_to_num(stats[name], nan=0.0),
                                transform=TRANSFORMS[name]) for name in state["components"]]
        baselines = [None if reference is None else state["baselines"][name] for name in state["components"]]
        normed = [normalise(c, y, n_classes, z_limit=p["z_limit"], baseline=b)
                  for c, b in zip(components, baselines, strict=True)]
        flags = np.logical_or.reduce([nm.flags for nm in normed])
        scores = np.max([nm.rank for nm in normed], axis=0)
        reasons = _reasons(flags, normed, components, y, classes, nearest_other(means, present),
                           p["reference_quantile"])
        summary = {
            "mode": "self" if reference is None else "reference",
            "detector": kind,
            "z_limit": p["z_limit"],
            "reference_quantile": p["reference_quantile"],
            "components": {c.name: {"flagged": int(nm.flags.sum()),
                                    "cuts": {label(classes[code]): cut for code, cut in nm.cuts.items()}}
                           for c, nm in zip(components, normed, strict=True)},
            "classes_without_reference_rows": [label(classes[c]) for c in range(n_classes)
                                               if not present[c] and (y == c).any()],
            "per_class": per_class(flags, y, classes),
            "reference": reference,
        }
        slab = stats["slab"] if "slab" in state["components"] else np.zeros(len(y))
        columns = {"outlier_sphere": stats["sphere"], "outlier_slab": slab, f"outlier_{kind}": stats["detector"]}
        return SignalResult(self.name, scores, flags, reasons, summary, columns)

    def _fit_detectors(self, X: np.ndarray, y: np.ndarray, n_classes: int, forest_rows: int | None = None) -> list:
        """One fitted detector per class with at least two rows (else None)."""
        rng = np.random.default_rng([self.params["random_state"], 7])
        out: list = []
        for c in range(n_classes):
            rows = np.flatnonzero(y == c)
            if rows.size < 2:
                out.append(None)
            elif self.params["detector"] == "ecod":
                out.append(ecod_fit(X[rows]))
            else:
                if forest_rows is not None and rows.size > forest_rows:
                    rows = np.sort(rng.choice(rows, size=forest_rows, replace=False))
                out.append(iforest_fit(X[rows], self.params["random_state"]))
        return out

    def _out_of_fold(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
        """Each fitted row's statistics under centroids and detectors fitted
        on the other folds: what it would score as a new batch row."""
        n_folds = max(2, min(OOF_FOLDS, len(y)))
        folds = stratified_folds(y, n_folds, self.params["random_state"])
        out = {name: np.zeros(len(y)) for name in ("sphere", "slab", "detector")}
        for f in range(n_folds):
            held, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
            means, present = centroids(X[train], y[train], n_classes)
            detectors = self._fit_detectors(X[train], y[train], n_classes, forest_rows=OOF_FOREST_ROWS)
            stats = _statistics(X[held], y[held], means, present, detectors, own=False)
            for name in out:
                out[name][held] = np.nan_to_num(stats[name], nan=0.0)
        return out


_LABELS = {"sphere": "distance to the class centroid", "slab": "distance toward another class"}


def _classes(analysis) -> tuple[bool, int]:
    """(labelled, number of classes); an unlabelled table is one class."""
    labelled = analysis.fitted.y is not None
    return labelled, (max(analysis.n_classes, 1) if labelled else 1)


def _padded(state: State, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The stored centroids, with absent rows for classes the fitted rows did not have."""
    means, present = np.asarray(state["means"]), np.asarray(state["present"], dtype=bool)
    extra = max(0, n_classes - len(present))
    return (np.vstack([means, np.zeros((extra, means.shape[1]))]),
            np.concatenate([present, np.zeros(extra, dtype=bool)]))


def _statistics(X, y, means, present, detectors, *, own: bool) -> dict:
    """Sphere, slab (NaN for a class without a centroid) and detector scores of rows.

    `own`: the rows are the ones the detectors were fitted on (in-sample scores).
    """
    sphere, slab = sphere_slab(X, y, means, present)
    detector = np.zeros(X.shape[0])
    for c, fitted in enumerate(detectors):
        rows = np.flatnonzero(y == c)
        if fitted is None or rows.size == 0:
            continue
        if isinstance(fitted, dict):  # ECOD's sorted columns
            detector[rows] = ecod_apply(fitted, X[rows], own=own)
        else:  # a scikit-learn IsolationForest: pyod's score, in or out of sample alike
            detector[rows] = iforest_apply(fitted, X[rows])
    return {"sphere": sphere, "slab": slab, "detector": detector}


def _reasons(flags, normed, components, y, classes, nearest, quantile):
    reasons = np.full(len(y), "", dtype=object)
    pct = f"{quantile * 100:g}th percentile"
    for row in np.flatnonzero(flags):
        code = int(y[row])
        cls = label(classes[code])
        parts = []
        for comp, nm in zip(components, normed, strict=True):
            if not nm.flags[row]:
                continue
            if comp.name == "slab":
                other = label(classes[nearest[code]]) if code in nearest else "another class"
                what = f"position toward class {other!r} {comp.values[row]:+.3g} (slab)"
            elif comp.name == "sphere":
                what = f"distance to the class centroid {comp.values[row]:.3g} (sphere)"
            else:
                what = f"{comp.label} {comp.values[row]:.3g}"
            if nm.cuts[code]["kind"] == "reference_quantile":
                parts.append(f"{what} beyond the reference's {pct} for class {cls!r} ({nm.z[row]:.1f} robust-z)")
            else:
                scale = " on a log scale" if comp.transform == "log" else ""
                parts.append(f"{what}, {nm.z[row]:.1f} robust-z from class {cls!r}{scale}")
        reasons[row] = "; ".join(parts)
    return reasons
