"""Label consistency: labels that disagree with their neighbourhood or an
out-of-fold model (confident learning, Northcutt et al. 2021).

Two out-of-sample estimates of P(class | row):
- knn: distance-weighted label shares of the row's k nearest neighbours,
  self excluded (batch mode) or reference rows only (reference mode), with
  weights 1 / (d + eps), eps = 10% of the median k-th neighbour distance,
  and a pseudo-count of 0.5 spread by class prior;
- model: k-fold out-of-fold predicted probabilities of a
  HistGradientBoosting classifier (each fold's model sees at most
  `max_train_rows` rows; no more folds than it takes for every fold's
  model to reach that cap, see `fold_count`); in reference mode one model
  trained on the reference scores the batch.
With method "both" the two probability matrices are averaged.

Fit and score: `fit` learns from the fitted table (the reference, or the
batch in a self-check) the out-of-fold probabilities, class thresholds,
flags and margin scores of the fitted rows and, when new batches will be
scored, one model trained on the fitted rows. `score` applies that state to
a batch (kNN on the reference rows, the stored model, the stored
thresholds); `score_fitted` is the self-check, from the out-of-fold values.

Bounded work on hostile shapes:
- A class with fewer fitted rows than folds (`n_folds`) cannot be learnt
  out of fold, so the model never sees its rows (a model over 1,500 classes
  of 2 rows each was an unbounded fit). Rows carrying such a label keep the
  kNN evidence only (method "both"; a label almost nobody nearby shares is
  still evidence), or stay unscored (score 0, not flagged) with method
  "model". A label the fitted table lacks altogether is judged as before
  (the model gives it probability 0). The summary names these classes.
- The model sees at most MAX_MODEL_FEATURES inputs: a wider encoding is
  reduced by a seeded Gaussian random projection (Johnson-Lindenstrauss,
  distances kept up to a small factor), fitted on the fitted table and
  stored in the state. kNN still uses the full encoding.

Confident learning on that matrix P: class thresholds t_j are the mean
self-confidence of class j (on the reference when given); the confident
joint Q counts a row with label i at j = argmax of P among classes with
P >= t, calibrated to the class counts; then "prune by noise rate" flags,
for each i != j, the round(Q[i, j]) rows labelled i with the largest margin
P_j - P_i, never a row whose given label is P's arg max. The row score is the normalised margin
(max_{j!=i} P_j - P_i + 1) / 2 in [0, 1].
"""

from __future__ import annotations

import math
import os

import numpy as np
from pandas.api.types import is_float_dtype
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.random_projection import GaussianRandomProjection
from threadpoolctl import threadpool_limits

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.label_consistency import LABEL_CONSISTENCY
from poison_expectations.core.signals.base import Signal, SignalResult, State, per_class, plain
from poison_expectations.core.signals.confident_learning import (
    class_thresholds, confident_issues, knn_probabilities, margin_scores)

# Below this many training rows a fit gains nothing from OpenMP threads, and
# on a loaded machine threads made it many times slower: fit single-threaded.
SINGLE_THREAD_ROWS = 50_000
# Widest input the model sees; a wider encoding is randomly projected to this many dimensions.
MAX_MODEL_FEATURES = 256


class LabelConsistency(Signal):
    name = "label_consistency"
    calibration = "class"
    declaration = LABEL_CONSISTENCY

    # -- fit -----------------------------------------------------------------------
    def fit(self, analysis, scoring: bool | None = None) -> State:
        """Out-of-fold probabilities, thresholds, flags and margin scores of the
        fitted rows; with `scoring`, also the one model that scores new batches.
        None: when the state will score other rows, i.e. the analysis has a
        reference or fits a profile (`analysis.fits_profile`); a plain
        self-check scores only its own rows and skips that fit."""
        if scoring is None:
            scoring = analysis.reference is not None or analysis.fits_profile
        p = self.params
        table = analysis.fitted
        y = _checked_labels(analysis, table)
        n_classes = analysis.n_classes
        counts = np.bincount(y, minlength=n_classes)
        min_rows = max(min(p["n_folds"], len(y)), 2)  # a class the folds cannot all train on is not learnable
        learnable = counts >= min_rows
        has_model = p["method"] != "knn" and int(learnable.sum()) >= 2
        projection = _projection(table.X, p["random_state"]) if has_model else None
        X = _project(projection, table.X)
        model_rows = learnable[y] if has_model else np.zeros(len(y), dtype=bool)
        knn = model = None
        if p["method"] != "model":
            nb = analysis.fitted_neighbors(p["k"])
            knn = knn_probabilities(nb.indices, nb.distances, y, n_classes)
        fold_models: list = []
        if model_rows.any():
            rows = _index(model_rows)
            model, fold_models = self._out_of_fold(X[rows], y[rows], n_classes)
        probs, scored = _combine(p["method"], knn, model, model_rows, n_classes)
        thresholds, flags, scores, other = _judge(probs, y, n_classes, scored)
        state = {"n_classes": n_classes, "class_counts": counts, "min_class_rows": min_rows,
                 "has_model": has_model, "thresholds": thresholds, "probabilities": probs,
                 "flags": flags, "alternative": other, "reference_scores": scores,
                 "projection": projection, "model": None}
        if has_model and scoring:
            # the fold models score new batches: a batch row is scored by one of them, drawn at
            # random, exactly as a fitted row was scored by the model of the folds it was not in,
            # so a clean batch row's score is exchangeable with `reference_scores` (one model on
            # all fitted rows would be better than each fold's and make clean rows look cleaner)
            state["fold_models"] = fold_models
        return state

    # -- score ---------------------------------------------------------------------
    def score(self, state: State, analysis) -> SignalResult:
        """The batch against the fitted reference: kNN among the reference rows,
        the stored model, the stored thresholds; nothing is refitted."""
        p = self.params
        y = _checked_labels(analysis, analysis.batch)
        ref = analysis.require_reference()
        n_classes = analysis.n_classes
        counts = _pad(state["class_counts"], n_classes, 0)
        learnable = counts >= state["min_class_rows"]
        # a label the reference lacks is judged by the model (probability 0); a too-rare one is not
        model_rows = (learnable[y] | (counts[y] == 0)) if state["has_model"] else np.zeros(len(y), dtype=bool)
        knn = model = None
        if p["method"] != "model":
            nb = analysis.neighbors("reference", p["k"])
            knn = knn_probabilities(nb.indices, nb.distances, ref.y, n_classes)
        if model_rows.any():
            if state["model"] is None and not state.get("fold_models"):
                raise InputError("label consistency: the state was fitted without its scoring models; "
                                 "fit it with scoring=True to score new batches")
            X = _project(state["projection"], analysis.batch.X)[_index(model_rows)]
            model = self._batch_proba(state, X, n_classes)
        probs, scored = _combine(p["method"], knn, model, model_rows, n_classes)
        thresholds = _pad(state["thresholds"], n_classes, 1.0)
        _, flags, scores, other = _judge(probs, y, n_classes, scored, thresholds)
        reference = {"rows": int(len(state["flags"])), "flagged": int(state["flags"].sum())}
        summary = self._summary(analysis, state, thresholds, flags, y, counts, reference)
        return SignalResult(self.name, scores, flags, _reasons(flags, y, other, probs, analysis.classes), summary)

    def _batch_proba(self, state: State, X: np.ndarray, n_classes: int) -> np.ndarray:
        """Each batch row's probabilities from one fold model drawn at random
        (seeded); a state stored before fold models were kept has one model."""
        if state["model"] is not None:
            return _full_proba(state["model"], X, n_classes)
        models = state["fold_models"]
        fold = np.random.default_rng([self.params["random_state"], 7]).integers(len(models), size=X.shape[0])
        probs = np.zeros((X.shape[0], n_classes))
        for f, model in enumerate(models):
            rows = np.flatnonzero(fold == f)
            if len(rows):
                probs[rows] = _fold_proba(model, X[rows], n_classes)
        return probs

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted rows' out-of-fold flags and margin scores."""
        y = _checked_labels(analysis, analysis.fitted)
        flags, other, probs = state["flags"], state["alternative"], state["probabilities"]
        summary = self._summary(analysis, state, state["thresholds"], flags, y, state["class_counts"], None)
        return SignalResult(self.name, state["reference_scores"].copy(), flags.copy(),
                            _reasons(flags, y, other, probs, analysis.classes), summary)

    def _summary(self, analysis, state, thresholds, flags, y, counts, reference) -> dict:
        p = self.params
        projection = state["projection"]
        return {
            "method": p["method"],
            "model": p["model"] if p["method"] != "knn" else None,
            "k": p["k"],
            "class_thresholds": {plain(c): float(t) for c, t in zip(analysis.classes, thresholds, strict=True)},
            "per_class": per_class(flags, y, analysis.classes),
            "reference": reference,
            "unlearnable_classes": _unlearnable(counts, state["min_class_rows"], y, analysis.classes, p["method"]),
            "model_features": None if projection is None else {
                "encoded": int(projection.n_features_in_), "projected_to": int(projection.n_components_)},
        }

    # -- the model -------------------------------------------------------------------
    def _model(self):
        seed = self.params["random_state"]
        if self.params["model"] == "logistic":
            return LogisticRegression(max_iter=300, C=1.0)
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=31,
                                              early_stopping=False, random_state=seed)

    def _out_of_fold(self, X, y, n_classes) -> tuple[np.ndarray, list]:
        """Out-of-fold probabilities of every row, and the fold models that
        gave them (a class-frequency vector for a fold that saw one class)."""
        n_folds = fold_count(self.params["n_folds"], len(y), self.params["max_train_rows"])
        seed = self.params["random_state"]
        if n_folds < 2:
            prior = np.bincount(y, minlength=n_classes) / len(y)
            return np.tile(prior, (len(y), 1)), [prior]
        counts = np.bincount(y, minlength=n_classes)
        stratified = counts[counts > 0].min() >= n_folds
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
        probs = np.zeros((len(y), n_classes))
        models: list = []
        for fold, (train, test) in enumerate(splitter.split(X, y)):
            train = train[_subsample(len(train), self.params["max_train_rows"], seed + fold)]
            if len(np.unique(y[train])) < 2:
                models.append(np.bincount(y[train], minlength=n_classes) / len(train))
            else:
                models.append(_fit(self._model(), X[train], y[train]))
            probs[test] = _fold_proba(models[-1], X[test], n_classes)
        return probs, models


def fold_count(requested: int, n: int, cap: int) -> int:
    """Folds for n rows: at most one per row (leave-one-out), and no more than
    it takes for every fold's model to train on `cap` rows. Once
    n (1 - 1/k) >= cap, each model sees `cap` rows whatever k is, so more folds
    only refit models of the same size on the same data: at 1M rows and the
    default cap, 2 folds instead of 5, every row still scored out of fold by
    a model trained on `cap` rows."""
    k = min(requested, n)
    if n > cap:
        k = min(k, max(2, math.ceil(n / (n - cap))))
    return k


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


def _reasons(flags, y, other, probs, classes) -> np.ndarray:
    reasons = np.full(len(y), "", dtype=object)
    rows = np.flatnonzero(flags)
    own = probs[rows, y[rows]]
    alt = probs[rows, other[rows]]
    for pos, row in enumerate(rows):
        reasons[row] = (f"label {plain(classes[y[row]])!r} inconsistent: neighbours/model favour "
                        f"{plain(classes[other[row]])!r} (p={alt[pos]:.2f} vs {own[pos]:.2f})")
    return reasons




def _threads(rows: int) -> int | None:
    """OpenMP threads for a model on `rows` rows: one below SINGLE_THREAD_ROWS,
    and one when the machine is already busy (1-minute load >= cores): the
    workers meet at a barrier in every tree node, and one that is descheduled
    stalls the rest (an 80k-row fit on 2 cores at load 8: 42 s wall and 14 s
    CPU with 2 threads, 4.5 s and 1.4 s with one). Else all (None). The
    fitted models and probabilities do not depend on the thread count."""
    if rows < SINGLE_THREAD_ROWS:
        return 1
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return 1 if os.getloadavg()[0] >= cores else None
    except OSError:  # no load average on this platform
        return None


def _fit(model, X, y):
    with threadpool_limits(limits=_threads(len(y)), user_api="openmp"):
        return model.fit(X, y)


def _subsample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _fold_proba(model, X, n_classes) -> np.ndarray:
    """A fold model's probabilities, or its class frequencies (a one-class fold)."""
    if isinstance(model, np.ndarray):
        return np.tile(model[:n_classes], (X.shape[0], 1)) if len(model) >= n_classes else np.tile(
            np.pad(model, (0, n_classes - len(model))), (X.shape[0], 1))
    return _full_proba(model, X, n_classes)


def _full_proba(model, X, n_classes) -> np.ndarray:
    """predict_proba with a column per class, also for classes a fold never saw."""
    out = np.zeros((X.shape[0], n_classes))
    with threadpool_limits(limits=_threads(X.shape[0]), user_api="openmp"):  # the thread policy of _fit
        out[:, model.classes_] = model.predict_proba(X)
    return out


# -- fit/score helpers ------------------------------------------------------------

def _checked_labels(analysis, table) -> np.ndarray:
    """The table's label codes, after the checks that make label consistency meaningful."""
    if table.y is None:
        raise InputError("this signal needs a label column (--label)")
    column = analysis.roles.label_column
    problem = label_looks_continuous(table.frame, column) if table.frame is not None else None
    if problem:
        raise InputError(problem)
    if analysis.n_classes < 2:
        raise InputError(f"label column '{column}' has a single class "
                         f"({analysis.classes[0]!r}); label consistency needs two or more")
    return table.y


def _projection(X: np.ndarray, seed: int):
    """A seeded Gaussian random projection to MAX_MODEL_FEATURES inputs, or None when X is narrow enough."""
    if X.shape[1] <= MAX_MODEL_FEATURES:
        return None
    return GaussianRandomProjection(n_components=MAX_MODEL_FEATURES, random_state=seed).fit(X)


def _project(projection, X: np.ndarray) -> np.ndarray:
    return X if projection is None else projection.transform(X)


def _index(mask: np.ndarray):
    """Rows of a mask as an indexer; all rows as a slice, so the matrix is not copied."""
    return slice(None) if mask.all() else np.flatnonzero(mask)


def _pad(values: np.ndarray, n: int, fill) -> np.ndarray:
    """Per-class values of the fitted table, for classes only the batch has too."""
    if len(values) >= n:
        return values[:n]
    return np.concatenate([values, np.full(n - len(values), fill, dtype=values.dtype)])


def _combine(method, knn, model, model_rows, n_classes) -> tuple[np.ndarray, np.ndarray | None]:
    """P for every row and the rows it scores (None: all). With "both" the rows
    the model judges average the two estimates; the others keep kNN alone."""
    n = len(model_rows)
    if method == "knn":
        return knn, None
    rows = _index(model_rows)
    if method == "model":
        probs = np.zeros((n, n_classes))
        if model is not None:
            probs[rows] = model
        return probs, None if isinstance(rows, slice) else model_rows
    if model is not None:  # knn is this call's own array: averaged in place
        knn[rows] = np.mean([knn[rows], model], axis=0)
    return knn, None


def _judge(probs, y, n_classes, scored, thresholds=None):
    """Confident learning over the scored rows (None: all): thresholds (from
    these rows unless given), flags, margin scores and the favoured other
    class; rows not scored get score 0 and no flag."""
    rows = slice(None) if scored is None else scored
    p, labels = probs[rows], y[rows]
    if thresholds is None:
        thresholds = class_thresholds(p, labels, n_classes)
    flags = np.zeros(len(y), dtype=bool)
    scores = np.zeros(len(y))
    other = np.zeros(len(y), dtype=np.int64)
    if len(labels):
        flags[rows] = confident_issues(p, labels, thresholds)
        scores[rows], other[rows] = margin_scores(p, labels)
    return thresholds, flags, scores, other


def _unlearnable(counts, min_rows, y, classes, method) -> dict | None:
    """Classes too rare for the model, and what happened to their rows."""
    rare = np.flatnonzero((counts > 0) & (counts < min_rows))
    if method == "knn" or not len(rare):
        return None
    return {"count": int(len(rare)), "min_rows": int(min_rows),
            "classes": [plain(classes[c]) for c in rare[:20]],
            "rows": int(np.isin(y, rare).sum()),
            "treatment": "kNN evidence only" if method == "both" else "not scored"}
