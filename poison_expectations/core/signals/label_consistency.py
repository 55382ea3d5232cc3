"""Label consistency: labels that disagree with their neighbourhood or an
out-of-fold model (confident learning, Northcutt et al. 2021).

Two out-of-sample estimates of P(class | row):
- knn: distance-weighted label shares of the row's k nearest neighbours,
  self excluded (batch mode) or reference rows only (reference mode), with
  weights 1 / (d + eps), eps = 10% of the median k-th neighbour distance,
  and a pseudo-count of 0.5 spread by class prior;
- model: k-fold out-of-fold predicted probabilities of a
  HistGradientBoosting classifier (each fold's model sees at most
  `max_train_rows` rows); in reference mode one model trained on the
  reference scores the batch.
With method "both" the two probability matrices are averaged.

Confident learning on that matrix P: class thresholds t_j are the mean
self-confidence of class j (on the reference when given); the confident
joint Q counts a row with label i at j = argmax of P among classes with
P >= t, calibrated to the class counts; then "prune by noise rate" flags,
for each i != j, the round(Q[i, j]) rows labelled i with the largest margin
P_j - P_i, never a row whose given label is P's arg max. The row score is the normalised margin
(max_{j!=i} P_j - P_i + 1) / 2 in [0, 1].
"""

from __future__ import annotations

import numpy as np
from pandas.api.types import is_float_dtype
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.label_consistency import LABEL_CONSISTENCY
from poison_expectations.core.signals.base import Signal, SignalResult, per_class, plain

# Below this many training rows a fit gains nothing from OpenMP threads, and
# on a loaded machine threads made it many times slower: fit single-threaded.
SINGLE_THREAD_ROWS = 50_000


class LabelConsistency(Signal):
    name = "label_consistency"
    declaration = LABEL_CONSISTENCY

    def run(self, analysis) -> SignalResult:
        y = analysis.require_labels()
        problem = label_looks_continuous(analysis.batch.frame, analysis.roles.label_column)
        if problem:
            raise InputError(problem)
        n_classes = analysis.n_classes
        if n_classes < 2:
            raise InputError(f"label column '{analysis.roles.label_column}' has a single class "
                             f"({analysis.classes[0]!r}); label consistency needs two or more")
        p = self.params
        ref = analysis.reference
        if ref is None:
            probs = self._self_probabilities(analysis.batch.X, y, n_classes, analysis.neighbors("self", p["k"]))
            thresholds = class_thresholds(probs, y, n_classes)
            reference_summary = None
        else:
            ref_probs = self._self_probabilities(ref.X, ref.y, n_classes, analysis.reference_neighbors(p["k"]))
            thresholds = class_thresholds(ref_probs, ref.y, n_classes)
            ref_flags = confident_issues(ref_probs, ref.y, thresholds)
            reference_summary = {"rows": int(len(ref.y)), "flagged": int(ref_flags.sum())}
            probs = self._reference_probabilities(analysis, n_classes)
        flags = confident_issues(probs, y, thresholds)
        scores, other = margin_scores(probs, y)
        reasons = _reasons(flags, y, other, probs, analysis.classes)
        summary = {
            "method": p["method"],
            "model": p["model"] if p["method"] != "knn" else None,
            "k": p["k"],
            "class_thresholds": {plain(c): float(t) for c, t in zip(analysis.classes, thresholds)},
            "per_class": per_class(flags, y, analysis.classes),
            "reference": reference_summary,
        }
        return SignalResult(self.name, scores, flags, reasons, summary)

    # -- probability estimates -------------------------------------------
    def _self_probabilities(self, X, y, n_classes, neighbors) -> np.ndarray:
        parts = []
        if self.params["method"] in ("knn", "both"):
            parts.append(knn_probabilities(neighbors.indices, neighbors.distances, y, n_classes))
        if self.params["method"] in ("model", "both"):
            parts.append(self._out_of_fold(X, y, n_classes))
        return np.mean(parts, axis=0)

    def _reference_probabilities(self, analysis, n_classes) -> np.ndarray:
        ref = analysis.reference
        parts = []
        if self.params["method"] in ("knn", "both"):
            nb = analysis.neighbors("reference", self.params["k"])
            parts.append(knn_probabilities(nb.indices, nb.distances, ref.y, n_classes))
        if self.params["method"] in ("model", "both"):
            rows = _subsample(len(ref.y), self.params["max_train_rows"], self.params["random_state"])
            model = _fit(self._model(), ref.X[rows], ref.y[rows])
            parts.append(_full_proba(model, analysis.batch.X, n_classes))
        return np.mean(parts, axis=0)

    def _model(self):
        seed = self.params["random_state"]
        if self.params["model"] == "logistic":
            return LogisticRegression(max_iter=300, C=1.0)
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=31,
                                              early_stopping=False, random_state=seed)

    def _out_of_fold(self, X, y, n_classes) -> np.ndarray:
        n_folds = min(self.params["n_folds"], len(y))  # a tiny table: leave-one-out at most
        seed = self.params["random_state"]
        if n_folds < 2:
            return np.tile(np.bincount(y, minlength=n_classes) / len(y), (len(y), 1))
        counts = np.bincount(y, minlength=n_classes)
        stratified = counts[counts > 0].min() >= n_folds
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
        probs = np.zeros((len(y), n_classes))
        for fold, (train, test) in enumerate(splitter.split(X, y)):
            train = train[_subsample(len(train), self.params["max_train_rows"], seed + fold)]
            if len(np.unique(y[train])) < 2:
                probs[test] = np.bincount(y[train], minlength=n_classes) / len(train)
                continue
            model = _fit(self._model(), X[train], y[train])
            probs[test] = _full_proba(model, X[test], n_classes)
        return probs


def label_looks_continuous(frame, label_column: str) -> str | None:
    """A reason string when the label looks like a regression target: float
    values that are not all integers, with more distinct values than
    max(20, 2 sqrt(n))."""
    labels = frame[label_column]
    if not is_float_dtype(labels):
        return None
    values = labels.dropna().to_numpy()
    non_integer = not np.all(np.equal(np.mod(values, 1), 0))
    distinct = len(np.unique(values))
    if non_integer and distinct > max(20, 2 * len(values) ** 0.5):
        return (f"label column '{label_column}' looks continuous ({distinct} distinct non-integer values); "
                "label-consistency checks need class labels")
    return None


def knn_probabilities(indices, distances, labels, n_classes) -> np.ndarray:
    """Distance-weighted neighbour label shares, smoothed by the class prior."""
    kth = distances[:, -1]
    eps = 0.1 * float(np.median(kth)) if np.median(kth) > 0 else 1e-6
    weights = 1.0 / (distances.astype(np.float64) + eps)
    neighbor_labels = labels[indices]
    probs = np.zeros((indices.shape[0], n_classes))
    for c in range(n_classes):
        probs[:, c] = (weights * (neighbor_labels == c)).sum(axis=1)
    prior = np.bincount(labels, minlength=n_classes) / len(labels)
    probs = (probs / weights.sum(axis=1, keepdims=True)) * indices.shape[1] + 0.5 * prior
    return probs / probs.sum(axis=1, keepdims=True)


def class_thresholds(probs, y, n_classes) -> np.ndarray:
    """t_j = mean P[i, j] over rows labelled j (mean self-confidence)."""
    thresholds = np.ones(n_classes)
    for c in range(n_classes):
        members = y == c
        if members.any():
            thresholds[c] = probs[members, c].mean()
    return thresholds


def confident_joint(probs, y, thresholds, n_classes) -> np.ndarray:
    """Q[i, j]: rows labelled i whose confident class (argmax of P among
    classes with P >= t) is j, calibrated so each row sums to the count of i."""
    passing = probs >= thresholds[None, :]
    counted = passing.any(axis=1)
    best = np.where(passing, probs, -np.inf).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (y[counted], best[counted]), 1)
    class_counts = np.bincount(y, minlength=n_classes)
    row_sums = joint.sum(axis=1, keepdims=True)
    return np.divide(joint * class_counts[:, None], row_sums, out=np.zeros_like(joint), where=row_sums > 0)


def confident_issues(probs, y, thresholds) -> np.ndarray:
    """Prune by noise rate: for each pair (i, j), i != j, flag the Q[i, j]
    rows labelled i with the largest margin P_j - P_i; rows whose given
    label is P's arg max are never flagged."""
    n_classes = probs.shape[1]
    joint = confident_joint(probs, y, thresholds, n_classes)
    flags = np.zeros(len(y), dtype=bool)
    for i in range(n_classes):
        members = np.flatnonzero(y == i)
        for j in range(n_classes):
            quota = int(round(joint[i, j]))
            if i == j or quota == 0:
                continue
            margin = probs[members, j] - probs[members, i]
            top = members[np.argsort(-margin, kind="stable")[:quota]]
            flags[top] = True
    flags &= probs.argmax(axis=1) != y
    return flags


def margin_scores(probs, y) -> tuple[np.ndarray, np.ndarray]:
    """(max_{j!=y} P_j - P_y + 1) / 2 and the arg max j."""
    rows = np.arange(len(y))
    own = probs[rows, y]
    others = probs.copy()
    others[rows, y] = -np.inf
    other = others.argmax(axis=1)
    return (others[rows, other] - own + 1.0) / 2.0, other


def _reasons(flags, y, other, probs, classes) -> np.ndarray:
    reasons = np.full(len(y), "", dtype=object)
    rows = np.flatnonzero(flags)
    own = probs[rows, y[rows]]
    alt = probs[rows, other[rows]]
    for pos, row in enumerate(rows):
        reasons[row] = (f"label {plain(classes[y[row]])!r} inconsistent: neighbours/model favour "
                        f"{plain(classes[other[row]])!r} (p={alt[pos]:.2f} vs {own[pos]:.2f})")
    return reasons




def _fit(model, X, y):
    with threadpool_limits(limits=1 if len(y) < SINGLE_THREAD_ROWS else None, user_api="openmp"):
        return model.fit(X, y)


def _subsample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _full_proba(model, X, n_classes) -> np.ndarray:
    """predict_proba with a column per class, also for classes a fold never saw."""
    out = np.zeros((X.shape[0], n_classes))
    # same thread policy as _fit: OpenMP threads in predict made small batches many times slower when busy
    with threadpool_limits(limits=1 if X.shape[0] < SINGLE_THREAD_ROWS else None, user_api="openmp"):
        out[:, model.classes_] = model.predict_proba(X)
    return out
