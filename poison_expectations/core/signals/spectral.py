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

Fit and score. `fit` learns from the fitted table only: the rank-Gauss
transform, and per class its mean, top direction, the mixture test (the
self-check's gate) and each row's projection. `reference_scores` is each
fitted row's out-of-fold tail score: tau on the direction and mean of the
other `FOLDS` - 1 folds of its class, divided by the class's median such
tau; `batch_scores` gives a batch row the same quantity against the stored
class direction, so the two are exchangeable on clean data. Against a
reference, `score` takes the top direction from the batch class itself, as
Tran et al. do (a reference direction would not point at poison the
reference lacks), and projects the stored reference rows on it.
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.spectral_signatures import SPECTRAL_SIGNATURES
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.split_pvalues import split_pvalues
from poison_expectations.core.signals.representation import (
    class_codes,
    excess_test,
    fit_representation,
    fitted_table,
    plain,
    represented,
    sample_ids,
    single_threaded,
)

MIN_CLASS_ROWS = 20  # smaller classes are not tested (too few rows for a tail)
FOLDS = 5  # folds of the out-of-fold reference scores
MIN_COMPONENT_VALUES = 3  # distinct values the mixture's tail needs (a mean and a variance, plus one)


class SpectralSignatures(Signal):
    name = "spectral"
    calibration = "class"
    declaration = SPECTRAL_SIGNATURES

    def fit(self, analysis) -> State:
        """Per class of the fitted table: mean, top direction, out-of-fold
        tail scores and, when the fitted table is the batch (self-check), the
        mixture gate. Against a reference `score` judges the batch's own
        directions, so the reference's gate would be fitted for nothing."""
        analysis.require_labels()
        fitted = analysis.fitted
        y = fitted.y
        rep = fit_representation(analysis, self.params["representation"])
        R = represented(analysis, rep, fitted_table(analysis))
        projection = np.zeros(fitted.n)
        reference_scores = np.zeros(fitted.n)
        per_class: list[dict | None] = []
        for c in range(analysis.n_classes):
            rows = np.flatnonzero(y == c)
            if len(rows) < MIN_CLASS_ROWS:
                per_class.append(None)
                continue
            mean, v, s = _direction(R[rows])
            projection[rows] = s
            oof = _out_of_fold_tau(R[rows], self.params["random_state"])
            median = max(float(np.median(oof)), 1e-12)
            reference_scores[rows] = oof / median
            gate = self._mixture_test(s) if analysis.reference is None else {}
            per_class.append({"mean": mean, "direction": v, "oof_median": median, "rows": int(len(rows)), **gate})
        return {"representation": rep, "classes": [plain(v) for v in analysis.classes], "per_class": per_class,
                "self_check": analysis.reference is None, "projection": projection,
                "reference_scores": reference_scores}

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted rows' own classes, gated by the mixture test."""
        _require_self_check(state, self.name)
        y = analysis.require_labels()
        out = _Collector(len(y))
        for i, code in class_codes(analysis, state["classes"]).items():
            info = state["per_class"][i]
            if info is None:
                continue
            rows = np.flatnonzero(y == code)
            tau = state["projection"][rows] ** 2
            stats = {k: info[k] for k in ("separated", "test", "delta_bic", "tail_share", "separation")}
            stats.update(flag_count=self._flag_count(len(rows)), label=state["classes"][i], rows=int(len(rows)))
            out.add(stats, rows, tau, analysis.batch.ids)
        return out.result(self.name, state["representation"]["label"], self.params["eps"])

    def score(self, state: State, analysis) -> SignalResult:
        """Against the reference: each batch class's own top direction, the
        reference rows projected on it, the tail test (see module doc)."""
        y = analysis.require_labels()
        ref = analysis.require_reference()
        X = represented(analysis, state["representation"], "batch")
        X_ref = represented(analysis, state["representation"], "reference")
        out = _Collector(len(y))
        present = [c for c in range(analysis.n_classes) if np.count_nonzero(y == c) >= MIN_CLASS_ROWS]
        for c in present:
            rows = np.flatnonzero(y == c)
            mean, v, s = _direction(X[rows])
            tau = s * s
            R_ref = X_ref[ref.y == c]
            if len(R_ref) >= MIN_CLASS_ROWS:
                stats = self._reference_test(tau, ((R_ref - mean) @ v) ** 2, len(present))
            else:
                stats = self._mixture_test(s)
            stats.update(flag_count=self._flag_count(len(rows)), label=plain(analysis.classes[c]),
                         rows=int(len(rows)))
            out.add(stats, rows, tau, analysis.batch.ids)
        return out.result(self.name, state["representation"]["label"], self.params["eps"])

    def batch_pvalues(self, state: State, analysis, result) -> tuple:
        """Split conformal p-values (split_pvalues.py): tau on the top direction
        of the other half of the row's batch class, ranked among the reference
        class's tau on that direction. The poison's direction is the batch's,
        so it must be learned on the batch, never on the rows it scores."""
        X = represented(analysis, state["representation"], "batch")
        ref = analysis.require_reference()
        X_ref = represented(analysis, state["representation"], "reference")

        def fit(R_fit):
            mean, v, _ = _direction(R_fit)
            return lambda R: ((R - mean).astype(np.float64) @ v) ** 2
        return split_pvalues(X, analysis.require_labels(), X_ref, ref.y, fit, MIN_CLASS_ROWS,
                             [self.params["random_state"], 11])

    def batch_scores(self, state: State, analysis, result=None) -> np.ndarray:
        """Batch rows on the scale of `reference_scores`: tau on the stored
        direction of the row's class over the class's out-of-fold median
        (0 for classes the fitted table had too few rows of). The gate ranks
        split-conformal p-values instead (`batch_pvalues`)."""
        X = represented(analysis, state["representation"], "batch")
        out = np.zeros(analysis.batch.n)
        y = analysis.require_labels()
        for i, code in class_codes(analysis, state["classes"]).items():
            info = state["per_class"][i]
            if info is not None:
                rows = y == code
                out[rows] = ((X[rows] - info["mean"]) @ info["direction"]) ** 2 / info["oof_median"]
        return out

    def _flag_count(self, n: int) -> int:
        return int(np.ceil(1.5 * self.params["eps"] * n))

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
        # a Gaussian component on fewer distinct values than it has parameters + 1 is
        # degenerate (its likelihood grows without bound as its variance shrinks): no evidence
        values = len(np.unique(fit[two.predict(fit) == minor]))
        separated = (delta_bic >= p["min_delta_bic"] and weights[minor] <= 1.5 * p["eps"]
                     and separation >= p["min_separation"] and in_tail and values >= MIN_COMPONENT_VALUES)
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


class _Collector:
    """Scores, flags, reasons and per-class summaries of one result."""

    def __init__(self, n: int):
        self.scores = np.zeros(n)
        self.flags = np.zeros(n, dtype=bool)
        self.reasons = np.full(n, "", dtype=object)
        self.per_class: list[dict] = []

    def add(self, stats: dict, rows: np.ndarray, tau: np.ndarray, ids: np.ndarray) -> None:
        if stats["separated"]:
            top = rows[np.argsort(-tau, kind="stable")[:stats["flag_count"]]]
            self.flags[top] = True
            self.scores[rows] = tau / max(float(tau.max()), 1e-12)
            self.reasons[top] = (f"spectral signature: top {stats['flag_count']} of class "
                                 f"{stats['label']!r} on its top singular direction ({stats['test']})")
            stats["ids"] = sample_ids(ids, top)
        self.per_class.append(stats)

    def result(self, name: str, label: str, eps: float) -> SignalResult:
        suspicious = [s for s in self.per_class if s["separated"]]
        lines = [f"Spectral signature: class {s['label']!r} has a separated tail ({s['test']}); "
                 f"{s['flag_count']} rows flagged" for s in suspicious]
        summary = {"representation": label, "eps": eps, "per_class": self.per_class,
                   "suspicious_classes": [s["label"] for s in suspicious], "console_lines": lines}
        return SignalResult(name, self.scores, self.flags, self.reasons, summary)


def _require_self_check(state: State, name: str) -> None:
    if not state["self_check"]:
        raise InputError(f"{name}: this state was fitted as a reference; it scores batches, not its own rows")


def _direction(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class mean, top right singular vector of the centred rows, projections."""
    mean = R.mean(axis=0)
    M = (R - mean).astype(np.float64)
    _, vectors = np.linalg.eigh(M.T @ M)
    v = vectors[:, -1]
    return mean, v, M @ v


def _out_of_fold_tau(R: np.ndarray, seed: int) -> np.ndarray:
    """tau of each row on the mean and direction of the other folds."""
    fold = np.random.default_rng(seed).permutation(len(R)) % FOLDS
    out = np.zeros(len(R))
    for f in range(FOLDS):
        held = fold == f
        if held.all() or not held.any():
            continue
        mean, v, _ = _direction(R[~held])
        out[held] = ((R[held] - mean).astype(np.float64) @ v) ** 2
    return out
