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
"""

from __future__ import annotations

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.feature_detectors import DETECTORS, ecod_scores, iforest_scores
from poison_expectations.core.signals.geometry import centroids, nearest_other, sphere_slab
from poison_expectations.core.signals.base import per_class, plain as label
from poison_expectations.core.signals.normalise import Component, class_of, normalise, single_threaded_blas

TRANSFORMS = {"sphere": "log", "slab": "two_sided", "detector": "log"}


class Outliers(Signal):
    name = "outlier"

    def __init__(self, detector: str = "ecod", z_limit: float = 3.5, reference_quantile: float = 0.999,
                 random_state: int = 0):
        if detector not in DETECTORS:
            raise InputError(f"outliers: detector {detector!r} is not one of {list(DETECTORS)}")
        if not 0.5 <= reference_quantile < 1:
            raise InputError(f"outliers: reference_quantile must be in [0.5, 1), got {reference_quantile}")
        super().__init__(detector=detector, z_limit=z_limit, reference_quantile=reference_quantile,
                         random_state=random_state)

    def run(self, analysis) -> SignalResult:
        with single_threaded_blas():
            return self._run(analysis)

    def _run(self, analysis) -> SignalResult:
        p = self.params
        batch, ref = analysis.batch, analysis.reference
        labelled = batch.y is not None
        n_classes = max(analysis.n_classes, 1) if labelled else 1
        classes = analysis.classes if labelled else np.array(["(all rows)"], dtype=object)
        y = class_of(batch.y, batch.n)
        fit_X = batch.X if ref is None else ref.X
        fit_y = y if ref is None else class_of(ref.y, ref.n)
        means, present = centroids(fit_X, fit_y, n_classes)
        sphere, slab = sphere_slab(batch.X, y, means, present)
        detector, detector_base = self._detector(fit_X, fit_y, batch.X, y, n_classes, own=ref is None)
        components = [Component("sphere", "distance to the class centroid", sphere,
                                transform=TRANSFORMS["sphere"])]
        if labelled and n_classes > 1:
            components.append(Component("slab", "distance toward another class", slab,
                                        transform=TRANSFORMS["slab"]))
        components.append(Component(p["detector"], f"{p['detector'].upper()} feature-outlier score", detector,
                                    detector_base, transform=TRANSFORMS["detector"]))
        if ref is not None:
            ref_sphere, ref_slab = sphere_slab(fit_X, fit_y, means, present)
            components[0].baseline = ref_sphere
            if len(components) == 3:
                components[1].baseline = ref_slab
        # a class absent from the fitted rows has no centroid: no geometry for it
        for comp in components:
            comp.values = np.nan_to_num(comp.values, nan=0.0)
        base_y = None if ref is None else fit_y
        normed = [normalise(c, y, base_y, n_classes, z_limit=p["z_limit"], quantile=p["reference_quantile"])
                  for c in components]
        flags = np.logical_or.reduce([nm.flags for nm in normed])
        scores = np.max([nm.rank for nm in normed], axis=0)
        reasons = _reasons(flags, normed, components, y, classes, nearest_other(means, present),
                           p["reference_quantile"])
        summary = {
            "mode": "self" if ref is None else "reference",
            "detector": p["detector"],
            "z_limit": p["z_limit"],
            "reference_quantile": p["reference_quantile"],
            "components": {c.name: {"flagged": int(nm.flags.sum()),
                                    "cuts": {label(classes[code]): cut for code, cut in nm.cuts.items()}}
                           for c, nm in zip(components, normed)},
            "classes_without_reference_rows": [label(classes[c]) for c in range(n_classes)
                                               if not present[c] and (y == c).any()],
            "per_class": per_class(flags, y, classes),
            "reference": None,
        }
        if ref is not None:
            ref_flags = np.logical_or.reduce([nm.baseline_flags for nm in normed])
            summary["reference"] = {"rows": int(ref.n), "flagged": int(ref_flags.sum())}
        columns = {"outlier_sphere": sphere, "outlier_slab": slab if len(components) == 3 else np.zeros(batch.n),
                   f"outlier_{p['detector']}": detector}
        return SignalResult(self.name, scores, flags, reasons, summary, columns)

    def _detector(self, fit_X, fit_y, X, y, n_classes, own: bool):
        """Per-class detector scores of the batch rows, and of the fitted rows (baseline)."""
        scores = np.zeros(X.shape[0])
        baseline = None if own else np.zeros(fit_X.shape[0])
        for c in range(n_classes):
            fit_rows = np.flatnonzero(fit_y == c)
            rows = np.flatnonzero(y == c)
            if fit_rows.size < 2:
                continue
            if self.params["detector"] == "ecod":
                if own:
                    scores[rows] = ecod_scores(fit_X[fit_rows])
                else:
                    baseline[fit_rows] = ecod_scores(fit_X[fit_rows])
                    if rows.size:
                        scores[rows] = ecod_scores(fit_X[fit_rows], X[rows])
            else:
                fitted, new = iforest_scores(fit_X[fit_rows], None if own or rows.size == 0 else X[rows],
                                             self.params["random_state"])
                if own:
                    scores[rows] = fitted
                else:
                    baseline[fit_rows] = fitted
                    if rows.size:
                        scores[rows] = new
        return scores, baseline


def _reasons(flags, normed, components, y, classes, nearest, quantile):
    reasons = np.full(len(y), "", dtype=object)
    pct = f"{quantile * 100:g}th percentile"
    for row in np.flatnonzero(flags):
        code = int(y[row])
        cls = label(classes[code])
        parts = []
        for comp, nm in zip(components, normed):
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
