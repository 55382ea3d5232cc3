"""Feature / activation clustering (Chen et al. 2018), per class.

For each class y: reduce its representation (rank-Gauss encoded features,
or named embedding columns computed upstream by an image/text model) to
`n_components` principal components, run 2-means, and measure the
silhouette of the split on a sample of at most `silhouette_rows` rows.
A class is a candidate when its smaller cluster holds between `min_share`
and `max_share` of the class and the split is better than chance: its
silhouette exceeds, by at least `min_silhouette_gain`, the silhouette of
2-means on a Gaussian sample with the same size and the same variances
along the principal components (a parametric null: splitting one blob
already scores 0.1-0.4, more in few dimensions). The default `max_share`,
0.15, is 1.5 x eps for an upper bound eps = 10% of poison per class (the
spectral signal's convention); a larger cluster is a sub-population a
bounded attack does not explain.

Candidates are then confirmed, because a real class can have natural
sub-populations:
- against a reference: the reference rows of class y are assigned to the
  same two centroids; the batch's small-cluster share must exceed the
  reference's by at least `min_share` with a one-sided binomial p-value
  <= `alpha` against the reference's Clopper-Pearson upper bound
  (Bonferroni over classes) -- a sub-population the reference also has is
  not poison;
- self-check with `reclassify` (Chen et al.'s exclusionary
  reclassification): a model trained without the small cluster predicts
  its rows; at least `min_other_share` of them must be assigned to another
  class, significantly (alpha, Bonferroni) above the model's held-out error
  on class y. Poison relabelled from another class goes back to it.
The confirmed class's small cluster is flagged. Cost: O(n d k) per class
for the projection and k-means (fitted on at most `max_fit_rows` rows).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from poison_expectations.core.params.feature_clustering import FEATURE_CLUSTERING
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.representation import (
    Reclassifier,
    excess_test,
    plain,
    representation,
    sample_ids,
    single_threaded,
)

MIN_CLASS_ROWS = 20


class FeatureClustering(Signal):
    name = "clustering"
    declaration = FEATURE_CLUSTERING

    def run(self, analysis) -> SignalResult:
        p = self.params
        y = analysis.require_labels()
        X, X_ref, label = representation(analysis, p["representation"])
        n = len(y)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        cluster_col = np.full(n, -1, dtype=np.int64)
        present = [c for c in range(analysis.n_classes) if np.count_nonzero(y == c) >= MIN_CLASS_ROWS]
        per_class = []
        for c in present:
            rows = np.flatnonzero(y == c)
            info, small = self._split(X[rows])
            info.update(label=plain(analysis.classes[c]), rows=int(len(rows)), suspicious=False)
            members = rows[small]
            if info["candidate"]:
                if X_ref is not None and np.count_nonzero(analysis.reference.y == c) >= MIN_CLASS_ROWS:
                    info.update(self._reference_check(info.pop("_model"), X_ref[analysis.reference.y == c],
                                                      len(members), len(rows), len(present)))
                elif p["reclassify"]:
                    info.update(self._reclassify(analysis, members, c, len(present)))
                else:
                    info.update(confirmed_by="silhouette only", strength=info["silhouette"], suspicious=True)
            info.pop("_model", None)
            if info["suspicious"]:
                flags[members] = True
                scores[members] = np.maximum(scores[members], info["strength"])
                cluster_col[members] = c
                reasons[members] = (f"feature clustering: in a small separate cluster of class {info['label']!r} "
                                    f"({info['small_share']:.1%} of the class, silhouette "
                                    f"{info['silhouette']:.2f}; {info['confirmed_by']})")
                info["ids"] = sample_ids(analysis.batch.ids, members)
            per_class.append(info)
        suspicious = [s for s in per_class if s["suspicious"]]
        lines = [f"Feature clustering: class {s['label']!r} splits off a cluster of {s['small_rows']} rows "
                 f"({s['small_share']:.1%}, silhouette {s['silhouette']:.2f}; {s['confirmed_by']})"
                 for s in suspicious]
        summary = {"representation": label, "per_class": per_class,
                   "suspicious_classes": [s["label"] for s in suspicious], "console_lines": lines}
        return SignalResult(self.name, scores, flags, reasons, summary, {"cluster_class": _labels(cluster_col,
                                                                                                  analysis)})

    # -- steps ------------------------------------------------------------------
    def _split(self, R: np.ndarray) -> tuple[dict, np.ndarray]:
        p = self.params
        rng = np.random.default_rng(p["random_state"])
        fit = R if len(R) <= p["max_fit_rows"] else R[rng.choice(len(R), p["max_fit_rows"], replace=False)]
        mean = fit.mean(axis=0)
        centred = (fit - mean).astype(np.float64)
        _, vectors = np.linalg.eigh(centred.T @ centred)
        dims = max(1, min(p["n_components"], R.shape[1], len(R) - 1))
        basis = vectors[:, ::-1][:, :dims]
        Z_fit = centred @ basis
        with single_threaded():
            kmeans = KMeans(2, n_init=3, random_state=p["random_state"]).fit(Z_fit)
            Z = (R - mean) @ basis
            assign = kmeans.predict(Z)
        counts = np.bincount(assign, minlength=2)
        small_id = int(np.argmin(counts))
        share = counts[small_id] / len(R)
        sample = min(p["silhouette_rows"], len(R))
        pick = rng.choice(len(R), size=sample, replace=False) if sample < len(R) else np.arange(len(R))
        with single_threaded():
            silhouette = _silhouette(Z[pick], assign[pick])
            null = _null_silhouette(Z_fit.std(axis=0), sample, rng, p["random_state"])
        candidate = (p["min_share"] <= share <= p["max_share"]
                     and silhouette - null >= p["min_silhouette_gain"])
        info = {"small_share": float(share), "small_rows": int(counts[small_id]), "silhouette": silhouette,
                "null_silhouette": null, "candidate": bool(candidate), "_model": (mean, basis, kmeans, small_id)}
        return info, assign == small_id

    def _reference_check(self, model, R_ref, k, n, n_tests) -> dict:
        mean, basis, kmeans, small_id = model
        with single_threaded():
            ref_small = kmeans.predict((R_ref - mean) @ basis) == small_id
        k0, n0 = int(ref_small.sum()), len(R_ref)
        p_value = excess_test(k, n, k0, n0)
        excess = k / n - k0 / n0
        ok = p_value * n_tests <= self.params["alpha"] and excess >= self.params["min_share"]
        return {"suspicious": bool(ok), "reference_share": k0 / n0, "p_value": p_value,
                "strength": float(max(0.0, excess) / (k / n)),
                "confirmed_by": f"reference share {k0 / n0:.1%}, p={p_value:.2g}"}

    def _reclassify(self, analysis, members, c, n_tests) -> dict:
        p = self.params
        y = analysis.batch.y
        keep = np.ones(len(y), dtype=bool)
        keep[members] = False
        result = Reclassifier(p["max_train_rows"], p["random_state"]).run(
            analysis.batch.X[keep], y[keep], analysis.batch.X[members], analysis.n_classes)
        other = int(np.count_nonzero(result.predicted != c))
        share = other / len(members)
        base_rows = int(result.baseline_rows[c])
        p_value = excess_test(other, len(members), int(round(result.baseline_error[c] * base_rows)), base_rows)
        ok = share >= p["min_other_share"] and p_value * n_tests <= p["alpha"]
        counts = np.bincount(result.predicted, minlength=analysis.n_classes)
        counts[c] = 0
        looks = plain(analysis.classes[int(counts.argmax())])
        return {"suspicious": bool(ok), "other_share": share, "looks_like": looks, "p_value": p_value,
                "baseline_error": float(result.baseline_error[c]), "strength": share,
                "confirmed_by": f"{share:.0%} reclassified as other classes (mostly {looks!r}) "
                                f"without the cluster"}


def _silhouette(Z: np.ndarray, assign: np.ndarray) -> float:
    if len(np.unique(assign)) < 2 or np.bincount(assign).min() < 2:
        return 0.0
    return float(silhouette_score(Z, assign))


def _null_silhouette(sds: np.ndarray, n: int, rng, seed: int) -> float:
    """Silhouette of 2-means on one Gaussian blob with these per-axis deviations."""
    blob = rng.standard_normal((n, len(sds))) * sds
    assign = KMeans(2, n_init=3, random_state=seed).fit_predict(blob)
    return _silhouette(blob, assign)


def _labels(codes: np.ndarray, analysis) -> np.ndarray:
    out = np.full(len(codes), "", dtype=object)
    hit = codes >= 0
    out[hit] = [str(plain(analysis.classes[c])) for c in codes[hit]]
    return out
