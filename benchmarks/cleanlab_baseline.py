"""The cleanlab baseline: Datalab with label, near_duplicate and outlier issues.

Fair setup:
* the same feature matrix as our self-check (the project's FeatureEncoder
  fitted on the batch: robust-scaled numerics, one-hot categoricals);
* out-of-fold pred_probs from the same model family as our label check:
  HistGradientBoostingClassifier (max_iter=100, learning_rate=0.1,
  max_leaf_nodes=31, no early stopping), 5-fold stratified
  ``cross_val_predict``;
* Datalab defaults otherwise (its own kNN graph, k=10, on these features).

Row score: cleanlab's quality scores are in [0, 1], lower = worse, one per
issue type; a row is as suspicious as its worst issue, so the combined
score is ``1 - min(label_score, near_duplicate_score, outlier_score)``.
Row flags: the union of ``is_label_issue``, ``is_near_duplicate_issue`` and
``is_outlier_issue``. Wall time covers encoding, pred_probs and Datalab.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd

from threadpoolctl import threadpool_limits

from poison_expectations.core.features import FeatureEncoder
from poison_expectations.core.signals.label_consistency import SINGLE_THREAD_ROWS

from .cases import ID, LABEL, SOURCE

ISSUE_TYPES = ("label", "near_duplicate", "outlier")


def encode(frame: pd.DataFrame, embedding_columns: tuple[str, ...] = ()) -> np.ndarray:
    columns = [c for c in frame.columns if c not in (ID, SOURCE, LABEL)]
    encoder = FeatureEncoder(columns, embedding_columns)
    encoder.fit(frame)
    return encoder.transform(frame)


def oof_pred_probs(X: np.ndarray, y: np.ndarray, n_folds: int = 5, random_state: int = 0) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=31,
                                           early_stopping=False, random_state=random_state)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    # the thread policy of our own label check, so neither side is slowed by OpenMP on small fits
    with threadpool_limits(limits=1 if len(y) < SINGLE_THREAD_ROWS else None, user_api="openmp"):
        return cross_val_predict(model, X, y, cv=folds, method="predict_proba")


def run_cleanlab(frame: pd.DataFrame, embedding_columns: tuple[str, ...] = ()) -> dict:
    from cleanlab import Datalab

    logging.getLogger("cleanlab").setLevel(logging.ERROR)
    start = time.perf_counter()
    X = encode(frame, embedding_columns)
    codes, _ = pd.factorize(frame[LABEL], sort=True)
    y = np.asarray(codes, dtype=np.int64)
    t_probs = time.perf_counter()
    pred_probs = oof_pred_probs(X, y)
    t_lab = time.perf_counter()
    lab = Datalab(data={LABEL: y}, label_name=LABEL, verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=X, pred_probs=pred_probs, issue_types={t: {} for t in ISSUE_TYPES})
    end = time.perf_counter()
    issues = lab.get_issues()
    quality = np.column_stack([issues[f"{t}_score"].to_numpy(dtype=float) for t in ISSUE_TYPES])
    flags = np.zeros(len(frame), dtype=bool)
    for t in ISSUE_TYPES:
        flags |= issues[f"is_{t}_issue"].to_numpy(dtype=bool)
    return {
        "scores": 1.0 - np.nanmin(quality, axis=1),
        "flags": flags,
        "issue_scores": {t: 1.0 - quality[:, i] for i, t in enumerate(ISSUE_TYPES)},
        "timings": {"encode": round(t_probs - start, 3), "pred_probs": round(t_lab - t_probs, 3),
                    "datalab": round(end - t_lab, 3)},
        "wall_s": end - start,
    }
