"""Spectral signatures (Tran, Li, Madry 2018), per class, with a tail gate.

For each class y with representation R_y (rank-Gauss transformed encoded
features, or the named embedding columns; see `representation.py`):
centre M = R_y - mean(R_y), take the top right singular vector v of M,
and score tau_i = (M_i . v)^2. Tran et al. remove the top 1.5 * eps * n_y
rows (eps = an upper bound on the poisoned share of a class). Every class
has a top singular vector, so rows are flagged only when the projection
s = M v shows a separated tail:

- self-check: a two-component 1-D Gaussian mixture beats one Gaussian by
  at least `min_delta_bic` BIC points (10 = "very strong" evidence, Kass &
  Raftery 1995), its smaller component holds at most 1.5 * eps of the
  class, sits in the tail (its mean is farther from the median than the
  larger one's) and is separated from the larger one: Ashman's
  D = sqrt(2) |mu1 - mu2| / sqrt(s1^2 + s2^2) >= `min_separation`
  (D > 2 is needed for a clean split of two Gaussians);
- against a reference: the reference rows of class y are projected on the
  same v (centred with the batch class mean); each side's tau is divided by
  its median (v maximises the batch's spread, so only the tail's shape is
  comparable) and the threshold t is the reference's (1 - `tail_quantile`)
  quantile. The class fails when the batch
  share above t exceeds the reference share by at least eps / 3 and the
  one-sided binomial test against the reference's Clopper-Pearson upper
  bound gives p <= `alpha` (Bonferroni over classes).

Cost: one d x d covariance per class (O(n d^2)); the mixture is fitted on at
most `max_fit_rows` rows of s. Scores in [0, 1]: tau / max tau of the class
for rows of gated classes, 0 elsewhere.
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

from poison_expectations.core.params.spectral_signatures import SPECTRAL_SIGNATURES
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.representation import excess_test, plain, representation, sample_ids, single_threaded

MIN_CLASS_ROWS = 20  # smaller classes are not tested (too few rows for a tail)


class SpectralSignatures(Signal):
    name = "spectral"
    declaration = SPECTRAL_SIGNATURES

    def run(self, analysis) -> SignalResult:
        p = self.params
        y = analysis.require_labels()
        X, X_ref, label = representation(analysis, p["representation"])
        n = len(y)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        per_class = []
        present = [c for c in range(analysis.n_classes) if np.count_nonzero(y == c) >= MIN_CLASS_ROWS]
        for c in present:
            rows = np.flatnonzero(y == c)
            ref_rows = None if X_ref is None else X_ref[analysis.reference.y == c]
            stats = self._class(X[rows], ref_rows, len(present))
            tau = stats.pop("tau")
            stats.update(label=plain(analysis.classes[c]), rows=int(len(rows)))
            if stats["separated"]:
                top = rows[np.argsort(-tau, kind="stable")[:stats["flag_count"]]]
                flags[top] = True
                scores[rows] = tau / max(float(tau.max()), 1e-12)
                reasons[top] = (f"spectral signature: top {stats['flag_count']} of class "
                                f"{stats['label']!r} on its top singular direction ({stats['test']})")
                stats["ids"] = sample_ids(analysis.batch.ids, top)
            per_class.append(stats)
        suspicious = [s for s in per_class if s["separated"]]
        lines = [f"Spectral signature: class {s['label']!r} has a separated tail ({s['test']}); "
                 f"{s['flag_count']} rows flagged" for s in suspicious]
        summary = {"representation": label, "eps": p["eps"], "per_class": per_class,
                   "suspicious_classes": [s["label"] for s in suspicious], "console_lines": lines}
        return SignalResult(self.name, scores, flags, reasons, summary)

    def _class(self, R: np.ndarray, R_ref: np.ndarray | None, n_tests: int) -> dict:
        p = self.params
        mean = R.mean(axis=0)
        M = (R - mean).astype(np.float64)
        cov = M.T @ M
        _, vectors = np.linalg.eigh(cov)
        v = vectors[:, -1]
        s = M @ v
        tau = s * s
        flag_count = int(np.ceil(1.5 * p["eps"] * len(s)))
        out = {"tau": tau, "flag_count": flag_count}
        if R_ref is not None and len(R_ref) >= MIN_CLASS_ROWS:
            out.update(self._reference_test(tau, ((R_ref - mean) @ v) ** 2, n_tests))
        else:
            out.update(self._mixture_test(s))
        return out

    def _mixture_test(self, s: np.ndarray) -> dict:
        p = self.params
        fit = s
        if len(s) > p["max_fit_rows"]:
            fit = np.random.default_rng(p["random_state"]).choice(s, size=p["max_fit_rows"], replace=False)
        fit = fit.reshape(-1, 1)
        with single_threaded():
            one = GaussianMixture(1, random_state=p["random_state"]).fit(fit)
            two = GaussianMixture(2, n_init=3, random_state=p["random_state"]).fit(fit)
            delta_bic = float(one.bic(fit) - two.bic(fit))
        weights, means = two.weights_, two.means_.ravel()
        sds = np.sqrt(two.covariances_.ravel())
        minor, major = int(np.argmin(weights)), int(np.argmax(weights))
        separation = float(np.sqrt(2) * abs(means[0] - means[1]) / np.sqrt(sds[0] ** 2 + sds[1] ** 2))
        median = float(np.median(s))
        in_tail = abs(means[minor] - median) > abs(means[major] - median)
        separated = (delta_bic >= p["min_delta_bic"] and weights[minor] <= 1.5 * p["eps"]
                     and separation >= p["min_separation"] and in_tail)
        test = f"mixture: delta BIC {delta_bic:.1f}, tail share {weights[minor]:.3f}, separation D {separation:.2f}"
        return {"separated": bool(separated), "test": test, "delta_bic": delta_bic,
                "tail_share": float(weights[minor]), "separation": separation}

    def _reference_test(self, tau: np.ndarray, tau_ref: np.ndarray, n_tests: int) -> dict:
        p = self.params
        # scale-free: v is the batch's own top direction, so the batch's spread along
        # it is inflated by selection; dividing each side by its median score compares
        # the shape of the tail, which a separated poison cluster changes
        tau = tau / max(float(np.median(tau)), 1e-12)
        tau_ref = tau_ref / max(float(np.median(tau_ref)), 1e-12)
        threshold = float(np.quantile(tau_ref, 1 - p["tail_quantile"]))
        k0 = int(np.count_nonzero(tau_ref > threshold))
        k = int(np.count_nonzero(tau > threshold))
        rate, rate0 = k / len(tau), k0 / len(tau_ref)
        p_value = excess_test(k, len(tau), k0, len(tau_ref))
        separated = p_value * n_tests <= p["alpha"] and rate - rate0 >= p["eps"] / 3
        test = f"tail share {rate:.3f} vs reference {rate0:.3f}, p={p_value:.2g}"
        return {"separated": bool(separated), "test": test, "tail_share": rate, "reference_tail_share": rate0,
                "p_value": p_value}
