"""Shared pieces of the backdoor and clean-label signals.

- `fit_representation` / `apply_representation`: the matrix the spectral
  and clustering signals look at. Named embedding columns when the user
  gave some (their dimensions only), else every encoded feature. Each
  column is mapped through a rank-Gauss transform, z = Phi^-1(mid-rank /
  (n + 1)), fitted on the fitted table (the reference when one is given),
  so heavy-tailed amounts and counts do not dominate the top singular
  vector and one-hot columns keep a small weight.
- `Reclassifier`: exclusionary reclassification (Chen et al. 2018). A model
  trained without the suspect rows (and optionally without some columns)
  predicts them; a held-out half of the training pool gives the model's
  baseline error per class, so "mostly predicted as another class" is
  tested against what the model gets wrong anyway.
- small statistics helpers (binomial tail against a Clopper-Pearson bound,
  Benjamini-Hochberg).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from poison_expectations.core.errors import InputError
from poison_expectations.core.gates import clopper_pearson_upper
from poison_expectations.core.params.common import REPRESENTATIONS
from poison_expectations.core.signals.base import plain

RANK_FIT_ROWS = 200_000  # rows the rank-Gauss transform is fitted on at most (sampled)
MODEL_ITERATIONS = 50  # boosting rounds of the reclassification model (learning rate 0.2)
# The models here fit at most a few 10k sampled rows; one OpenMP thread costs
# little, while several threads on cores busy with other jobs busy-wait and run
# 10-30x slower (measured on a shared 2-core machine).
MODEL_THREADS = 1


def single_threaded():
    """Context limiting OpenMP/BLAS to MODEL_THREADS for small model fits."""
    return threadpool_limits(limits=MODEL_THREADS)


def column_blocks(analysis) -> dict[str, np.ndarray]:
    """Encoded column positions of each source feature column."""
    blocks, at = {}, 0
    for plan in analysis.encoder.plans:
        width = plan.width()
        blocks[plan.name] = np.arange(at, at + width)
        at += width
    return blocks


def representation_columns(analysis, which: str) -> tuple[np.ndarray, str]:
    """Encoded columns to analyse and a label for the summary."""
    if which not in REPRESENTATIONS:
        raise InputError(f"representation {which!r} is not one of {list(REPRESENTATIONS)}")
    embedded = tuple(analysis.roles.embedding_columns)
    if which == "embedding" and not embedded:
        raise InputError("representation 'embedding' needs embedding columns (data.embedding_columns)")
    blocks = column_blocks(analysis)
    if which == "embedding" or (which == "auto" and embedded):
        return np.concatenate([blocks[name] for name in embedded]), "embedding:" + ",".join(embedded)
    return np.arange(analysis.batch.X.shape[1]), "encoded features"


def rank_gauss_fit(fit: np.ndarray, max_fit_rows: int = RANK_FIT_ROWS, random_state: int = 0) -> np.ndarray:
    """The fitted transform: each column of `fit` sorted (sampled to `max_fit_rows`
    rows), one row per column so that each is contiguous for searchsorted."""
    rows = fit
    if fit.shape[0] > max_fit_rows:
        pick = np.random.default_rng(random_state).choice(fit.shape[0], size=max_fit_rows, replace=False)
        rows = fit[pick]
    return np.ascontiguousarray(np.sort(rows, axis=0).T)


def rank_gauss_apply(ordered: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Map each column through Phi^-1 of its empirical CDF (mid-ranks for ties)."""
    out = np.empty(X.shape, dtype=np.float32)
    for j in range(ordered.shape[0]):
        out[:, j] = _normal_scores(ordered[j], X[:, j])
    return out


def _normal_scores(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Phi^-1(((lo + hi) / 2 + 0.5) / (n + 1)), lo / hi = the left / right
    insertion points of each value in `ordered`, looked up among the distinct
    fitted values (one search, on sorted keys when there are many: searchsorted
    is several times faster then). Equal to searching `ordered` twice."""
    n_fit = len(ordered)
    distinct, lo = np.unique(ordered, return_index=True)
    hi = np.append(lo[1:], n_fit)
    on = special.ndtri(((lo + hi) / 2.0 + 0.5) / (n_fit + 1.0)).astype(np.float32)  # value equal to a fitted one
    between = special.ndtri((np.append(lo, n_fit) + 0.5) / (n_fit + 1.0)).astype(np.float32)  # lo == hi
    if len(distinct) < 4096:
        at = np.searchsorted(distinct, values)
    else:
        by = np.argsort(values)
        at = np.empty(len(values), dtype=np.intp)
        at[by] = np.searchsorted(distinct, values[by])
    last = np.minimum(at, len(distinct) - 1)
    equal = distinct[last] == values
    if len(distinct) and np.isnan(distinct[-1]):  # NaN == NaN for the rank, as searchsorted has it
        equal |= np.isnan(values)
    return np.where(equal, on[last], between[at])


def fit_representation(analysis, which: str = "auto") -> dict:
    """State of the representation: the encoded columns used, a description,
    and the rank-Gauss transform fitted on the fitted table (plain arrays)."""
    cols, label = representation_columns(analysis, which)
    ordered = rank_gauss_fit(analysis.fitted.X[:, cols], random_state=analysis.options.random_state)
    return {"columns": cols.astype(np.int64), "label": label, "sorted": ordered}


def apply_representation(state: dict, X: np.ndarray) -> np.ndarray:
    """Rows of the encoded matrix `X` in the fitted representation."""
    return rank_gauss_apply(state["sorted"], X[:, state["columns"]])


def represented(analysis, state: dict, table: str) -> np.ndarray:
    """The rows of `table` ("batch" or "reference") in the fitted
    representation, computed once per run: the report, the p-values and the
    scores of a signal read it, and spectral signatures and feature
    clustering share it when their representations agree (same columns and
    transform). Read-only."""
    digest = hashlib.blake2b(np.ascontiguousarray(state["sorted"]).tobytes(), digest_size=16)
    digest.update(np.asarray(state["columns"], dtype=np.int64).tobytes())
    source = analysis.batch if table == "batch" else analysis.require_reference()

    def make() -> np.ndarray:
        R = apply_representation(state, source.X)
        R.setflags(write=False)
        return R
    return analysis.derived(("representation", table, digest.hexdigest()), make)


def fitted_table(analysis) -> str:
    """Which table `analysis.fitted` is, for `represented`."""
    return "reference" if analysis.reference is not None else "batch"


def class_codes(analysis, labels: list) -> dict:
    """Stored class label -> this analysis's label code (codes differ between
    analyses: labels are factorised in order of appearance)."""
    codes = {plain(v): code for code, v in enumerate(analysis.classes)}
    return {i: codes[label] for i, label in enumerate(labels) if label in codes}


# -- exclusionary reclassification ---------------------------------------------

@dataclass
class Reclassified:
    """Predictions for suspect rows from a model that never saw them."""

    predicted: np.ndarray  # class code per suspect row
    baseline_error: np.ndarray  # per class: held-out share predicted as another class
    baseline_rows: np.ndarray  # per class: held-out rows behind that share


class Reclassifier:
    """HistGradientBoosting trained on a pool that excludes the suspects.

    Half of the pool (sampled to at most `max_train_rows`) trains, the other
    half measures the baseline error per class, so the test "these rows are
    mostly predicted as another class" has a fair null.
    """

    def __init__(self, max_train_rows: int = 50_000, random_state: int = 0):
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def run(self, X_pool: np.ndarray, y_pool: np.ndarray, X_suspect: np.ndarray, n_classes: int,
            columns: np.ndarray | None = None) -> Reclassified:
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(y_pool))
        half = len(order) // 2
        train = np.sort(order[:min(half, self.max_train_rows)])
        hold = np.sort(order[half:half + min(len(order) - half, self.max_train_rows)])
        cols = slice(None) if columns is None else columns
        if columns is not None and len(columns) == 0:
            # no columns left: predict the training prior's majority class
            majority = int(np.bincount(y_pool[train], minlength=n_classes).argmax())
            predicted = np.full(X_suspect.shape[0], majority)
            held = np.full(len(hold), majority)
        elif len(np.unique(y_pool[train])) < 2:
            only = int(y_pool[train][0]) if len(train) else 0
            predicted = np.full(X_suspect.shape[0], only)
            held = np.full(len(hold), only)
        else:
            model = HistGradientBoostingClassifier(max_iter=MODEL_ITERATIONS, learning_rate=0.2,
                                                   max_leaf_nodes=15, early_stopping=False,
                                                   random_state=self.random_state)
            with single_threaded():
                model.fit(X_pool[train][:, cols], y_pool[train])
                predicted = (model.predict(X_suspect[:, cols]) if X_suspect.shape[0]
                             else np.zeros(0, dtype=int))
                held = model.predict(X_pool[hold][:, cols])
        y_hold = y_pool[hold]
        rows = np.bincount(y_hold, minlength=n_classes)
        wrong = np.bincount(y_hold[held != y_hold], minlength=n_classes)
        error = np.divide(wrong, rows, out=np.zeros(n_classes), where=rows > 0)
        return Reclassified(np.asarray(predicted, dtype=np.int64), error, rows)


def excess_test(k: int, n: int, k0: int, n0: int, confidence: float = 0.95) -> float:
    """One-sided binomial p-value of k of n against the Clopper-Pearson upper
    bound of the baseline rate k0 / n0 (so a small baseline is not overtrusted)."""
    if n <= 0:
        return 1.0
    upper = clopper_pearson_upper(k0, n0, confidence)
    return float(stats.binom.sf(k - 1, n, upper))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values), same order as the input."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out



def sample_ids(ids: np.ndarray, rows: np.ndarray, limit: int = 20) -> list:
    return [plain(v) for v in ids[rows[:limit]]]
