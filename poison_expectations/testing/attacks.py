"""Seeded poisoned-data generator for tests, benchmarks and sample data.

Pure numpy / pandas / scikit-learn: this module never imports Great
Expectations, so benchmarks and fixtures can use it on their own.

Two parts:

* :func:`make_tabular` draws a realistic labelled table (ids, mixed numeric
  columns, categoricals, a skewed ``source`` column, integer labels).
* Attack functions take a clean frame and return a :class:`Poisoned` bundle:
  the poisoned frame, a boolean ground-truth mask ``is_poison`` aligned with
  the frame's rows, a one-line description and a ``details`` dict.

Conventions shared by every attack ``fn(frame, *, label_column="label",
rate=0.03, random_state=0, feature_columns=None, id_column=None, ...)``:

* ``rate`` is the fraction of rows of the OUTPUT that are poison.  Attacks
  that edit rows in place poison ``round(rate * n)`` rows; attacks that add
  rows add ``k = round(rate * n / (1 - rate))`` rows (at least one when
  ``rate > 0``) so that ``k / (n + k)`` is ``rate`` up to rounding.
* ``feature_columns`` defaults to the numeric (non-bool) columns other than
  the label and id columns.  The id column is ``id_column`` when given, else
  a column named ``row_id`` or ``id`` when present, else none.
* In-place attacks keep the row order.  Attacks that add rows keep the
  original rows in their original relative order and scatter the new rows at
  random positions; ``is_poison`` follows them.  The returned frame always
  has the input's columns in the input's order and a fresh 0..n-1 index.
* Added rows get new unique ids when there is an id column: ``r000123``-style
  ids continue the numbering (same prefix and width), integer ids continue
  from the maximum.  New ids are therefore larger than the clean ones; a
  detector must not use the id as a feature.
* New numeric values are rounded to each column's observed decimal precision
  (integer columns stay integer), so added rows look like the clean ones.
* Everything is deterministic for ``random_state`` (a non-negative int) and
  vectorised: no Python loop runs over rows.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "Poisoned",
    "make_tabular",
    "make_embedding_backdoor",
    "random_flips",
    "margin_flips",
    "boundary_points",
    "backdoor",
    "near_duplicate_flood",
    "conflicting_copies",
    "bad_source",
    "clean_label_collision",
    "ATTACKS",
]


@dataclass
class Poisoned:
    """A poisoned table with its ground truth."""

    frame: pd.DataFrame  # the poisoned table; input columns, input order; index 0..n-1
    is_poison: np.ndarray  # bool per row of `frame`
    description: str  # one line: what was done
    details: dict = field(default_factory=dict)  # attack specifics

    @property
    def n_poison(self) -> int:
        return int(np.count_nonzero(self.is_poison))

    @property
    def poison_rate(self) -> float:
        return float(self.n_poison / max(len(self.is_poison), 1))


# --------------------------------------------------------------------------
# make_tabular
# --------------------------------------------------------------------------

_SOURCE_NAMES = (
    "vendor_a", "crowd_07", "internal", "vendor_b", "crowd_12", "partner_x",
    "vendor_c", "crowd_03", "web_scrape", "crowd_19", "partner_y", "vendor_d",
)
_CAT_LEVELS = (
    ("web", "mobile", "store", "phone"),
    ("north", "south", "east", "west", "central"),
    ("basic", "plus", "pro"),
    ("new", "returning", "lapsed", "vip"),
    ("A", "B", "C", "D", "E", "F"),
)
# Marginal shape of numeric column j is _NUMERIC_KINDS[j % len]:
#   measure: location-scale, 1-2 decimals (e.g. a temperature or a weight)
#   amount:  log-normal, positive, 2 decimals (a price)
#   count:   non-negative integer (visits, items)
#   score:   unrounded float (a computed score)
#   ratio:   in (0, 1), 3 decimals
_NUMERIC_KINDS = ("measure", "amount", "count", "score", "ratio", "measure", "count", "amount")


def _check_seed(random_state: Any) -> int:
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be a non-negative int, got {random_state!r}")
    if random_state < 0:
        raise ValueError(f"random_state must be a non-negative int, got {random_state!r}")
    return int(random_state)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sample_rows(probs: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category per row; row i uses the distribution probs[rows[i]]."""
    cum = np.cumsum(probs, axis=1)[:, :-1]
    u = rng.random(len(rows))
    out = np.zeros(len(rows), dtype=np.int64)
    for j in range(cum.shape[1]):  # loop over categories, not rows
        out += u > cum[rows, j]
    return out


def _source_names(n_sources: int) -> list[str]:
    names = list(_SOURCE_NAMES[:n_sources])
    k = 20
    while len(names) < n_sources:
        names.append(f"crowd_{k:02d}")
        k += 1
    return names


def make_embedding_backdoor(n: int = 1500, *, dim: int = 32, n_classes: int = 3, rate: float = 0.05,
                            seed: int = 0, shift: float = 4.0, sep: float = 6.0, poison: bool = True,
                            sample_seed: int | None = None,
                            informative_column: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Gaussian class blobs in a `dim`-d embedding column `emb` (centres from
    `seed`, rows from `sample_seed`), with a noise column `a` (and, if
    `informative_column`, a column `b` = noise + label); poison = `rate` of
    the rows of other classes shifted by one fixed trigger vector (norm
    `shift`) and relabelled to class 0. Returns (frame, is_poison)."""
    centres = np.random.default_rng(seed).normal(size=(n_classes, dim)) * sep / np.sqrt(2 * dim)
    rng = np.random.default_rng([seed, seed if sample_seed is None else sample_seed, 1])
    y = rng.integers(n_classes, size=n)
    emb = centres[y] + rng.normal(size=(n, dim))
    truth = np.zeros(n, dtype=bool)
    if poison:
        idx = rng.choice(np.flatnonzero(y != 0), size=int(rate * n), replace=False)
        trigger = rng.normal(size=dim)
        emb[idx] += trigger * shift / np.linalg.norm(trigger)
        y[idx] = 0
        truth[idx] = True
    frame = pd.DataFrame({"row_id": np.arange(n), "a": rng.normal(size=n)})
    if informative_column:
        frame["b"] = rng.normal(size=n) + y
    frame["emb"] = list(emb.astype(np.float32))
    frame["label"] = y
    return frame, truth


def make_tabular(
    n_rows: int,
    n_numeric: int = 8,
    n_categorical: int = 2,
    n_classes: int = 2,
    n_sources: int = 6,
    class_sep: float = 1.5,
    label_noise: float = 0.0,
    with_id: bool = True,
    random_state: int = 0,
    *,
    distribution_seed: int | None = None,
) -> pd.DataFrame:
    """Draw a realistic labelled table.

    Columns, in order: ``row_id`` (strings ``r000000``..., when ``with_id``),
    ``num_0..num_{n_numeric-1}``, ``cat_0..cat_{n_categorical-1}``,
    ``source``, ``label`` (int64 in ``0..n_classes-1``).

    Generative model:

    * ``source``: ``n_sources`` named contributors (``vendor_a``,
      ``crowd_07``, ...) with geometrically decreasing shares (about 39%,
      25%, 16%, 10%, 6%, 4% for six sources), so the smaller ones hold under
      8% of rows.  Each source has its own, mildly different class mix.
    * ``label`` given the source; then latent features given the label: a
      Gaussian per class in whitened space whose centroids are
      ``2 * class_sep`` apart on about 75% of the dimensions (a linear Bayes
      error near ``Phi(-class_sep)`` for two classes), with per-class scale
      differences, mixed by a random linear map so the columns correlate.
    * Each latent column is standardised and given a realistic marginal by a
      monotone map (so it stays informative): location-scale measures with
      1-2 decimals, log-normal amounts with 2 decimals, integer counts, an
      unrounded score, ratios in (0, 1) with 3 decimals.
    * ``cat_j``: 3-6 string levels whose frequencies tilt mildly with the
      label.
    * ``label_noise``: that share of rows then gets a different random class
      (natural noise; it is part of the "clean" data).

    ``random_state`` (non-negative int) fixes everything.  By default it also
    fixes the distribution; pass ``distribution_seed`` to draw a fresh sample
    (``random_state``) from a fixed distribution (``distribution_seed``),
    e.g. a trusted reference for a training table.
    ``distribution_seed=None`` means ``distribution_seed=random_state``.
    1M rows take about a second.
    """
    random_state = _check_seed(random_state)
    dseed = random_state if distribution_seed is None else _check_seed(distribution_seed)
    n_rows = int(n_rows)
    if n_rows < 1:
        raise ValueError("n_rows must be >= 1")
    if n_numeric < 1:
        raise ValueError("n_numeric must be >= 1")
    if n_categorical < 0:
        raise ValueError("n_categorical must be >= 0")
    if n_classes < 2:
        raise ValueError("n_classes must be >= 2")
    if n_sources < 1:
        raise ValueError("n_sources must be >= 1")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError("label_noise must be in [0, 1)")

    prm = np.random.default_rng([dseed, 7001])  # distribution parameters
    rng = np.random.default_rng([random_state, 7002])  # the sample
    n, d, C, S = n_rows, int(n_numeric), int(n_classes), int(n_sources)

    # --- distribution parameters (all from prm) ---------------------------
    shares = np.exp(-0.45 * np.arange(S)) * np.exp(prm.normal(0.0, 0.1, S))
    shares /= shares.sum()
    base_logits = prm.normal(0.0, 0.3, C)
    class_given_source = _softmax(base_logits[None, :] + prm.normal(0.0, 0.3, (S, C)))
    n_inf = max(1, int(round(0.75 * d)))
    if C == 2:
        w = prm.normal(size=n_inf)
        w /= np.linalg.norm(w)
        centroids = np.stack([-w, w]) * class_sep
    else:
        g = prm.normal(size=(n_inf, C))
        if C <= n_inf:
            q, _ = np.linalg.qr(g)
            centroids = q[:, :C].T * np.sqrt(2.0) * class_sep
        else:
            centroids = (g / np.linalg.norm(g, axis=0)).T * np.sqrt(2.0) * class_sep
        centroids -= centroids.mean(axis=0)
    mu = np.zeros((C, d))
    mu[:, :n_inf] = centroids
    class_scale = prm.uniform(0.85, 1.15, C)
    mix = np.eye(d) + 0.35 * prm.normal(size=(d, d)) * (1.0 - np.eye(d))
    prior = shares @ class_given_source
    m = prior @ mu
    second = (prior * class_scale**2).sum() * np.eye(d) + (mu.T * prior) @ mu - np.outer(m, m)
    lat_mean = m @ mix
    lat_std = np.sqrt(np.diag(mix.T @ second @ mix))
    kinds = [_NUMERIC_KINDS[j % len(_NUMERIC_KINDS)] for j in range(d)]
    kind_params = []
    for kind in kinds:
        if kind == "measure":
            loc = float(prm.choice([20.0, 50.0, 100.0, 170.0]))
            kind_params.append((loc, loc * prm.uniform(0.06, 0.15), int(prm.choice([1, 2]))))
        elif kind == "amount":
            kind_params.append((prm.uniform(2.0, 5.0), prm.uniform(0.4, 0.7)))
        elif kind == "count":
            kind_params.append((prm.uniform(0.8, 2.0), prm.uniform(0.3, 0.5)))
        elif kind == "score":
            kind_params.append((prm.uniform(-1.0, 1.0), prm.uniform(0.5, 3.0)))
        else:  # ratio
            kind_params.append((prm.uniform(-0.8, 0.8), prm.uniform(0.6, 1.0)))
    cat_specs = []
    for j in range(n_categorical):
        levels = _CAT_LEVELS[j % len(_CAT_LEVELS)]
        L = len(levels)
        logits = prm.normal(0.0, 0.6, L)[None, :] + prm.normal(0.0, 0.45, (C, L))
        cat_specs.append((np.asarray(levels, dtype=object), _softmax(logits)))

    # --- the sample (all from rng) -----------------------------------------
    src = rng.choice(S, size=n, p=shares)
    y = _sample_rows(class_given_source, src, rng)
    z = rng.standard_normal((n, d))
    z *= class_scale[y][:, None]
    z += mu[y]
    u = (z @ mix - lat_mean) / lat_std

    columns: dict[str, Any] = {}
    if with_id:
        width = max(6, len(str(n - 1)))
        columns["row_id"] = ("r" + pd.Series(np.arange(n)).astype(str).str.zfill(width)).to_numpy()
    for j, (kind, p) in enumerate(zip(kinds, kind_params)):
        x = u[:, j]
        if kind == "measure":
            col = np.round(p[0] + p[1] * x, p[2])
        elif kind == "amount":
            col = np.round(np.exp(p[0] + p[1] * x), 2)
        elif kind == "count":
            col = np.floor(np.exp(p[0] + p[1] * x)).astype(np.int64)
        elif kind == "score":
            col = p[0] + p[1] * x
        else:
            col = np.round(1.0 / (1.0 + np.exp(-(p[0] + p[1] * x))), 3)
        columns[f"num_{j}"] = col
    for j, (levels, probs) in enumerate(cat_specs):
        columns[f"cat_{j}"] = pd.array(levels[_sample_rows(probs, y, rng)], dtype="str")
    names = np.asarray(_source_names(S), dtype=object)
    columns["source"] = pd.array(names[src], dtype="str")

    n_noise = int(round(label_noise * n))
    if n_noise:
        idx = rng.choice(n, size=n_noise, replace=False)
        y[idx] = (y[idx] + rng.integers(1, C, size=n_noise)) % C
    columns["label"] = y.astype(np.int64)
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------
# shared helpers for the attacks
# --------------------------------------------------------------------------


@dataclass
class _Ctx:
    frame: pd.DataFrame  # input with a reset index (not copied)
    label_column: str
    id_column: str | None
    features: list[str]
    classes: np.ndarray  # sorted distinct labels
    codes: np.ndarray  # label code per row
    rng: np.random.Generator
    rate: float
    seed: int


def _context(
    frame: pd.DataFrame,
    label_column: str,
    rate: float,
    random_state: int,
    feature_columns: Sequence[str] | None,
    id_column: str | None,
    *,
    stream: int,
    need_numeric: bool = True,
) -> _Ctx:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("frame must be a pandas DataFrame")
    if len(frame) < 2:
        raise ValueError("frame needs at least 2 rows")
    if label_column not in frame.columns:
        raise ValueError(f"label column {label_column!r} not in frame")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    seed = _check_seed(random_state)
    if id_column is None:
        id_column = next((c for c in ("row_id", "id") if c in frame.columns), None)
    elif id_column not in frame.columns:
        raise ValueError(f"id column {id_column!r} not in frame")
    if feature_columns is None:
        features = [
            c for c in frame.columns
            if c not in (label_column, id_column)
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]
    else:
        features = list(feature_columns)
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise ValueError(f"feature columns not in frame: {missing}")
        if label_column in features:
            raise ValueError("the label column cannot be a feature column")
    if need_numeric:
        if not features:
            raise ValueError("no numeric feature columns")
        bad = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            raise ValueError(f"feature columns must be numeric: {bad}")
    labels = frame[label_column]
    if labels.isna().any():
        raise ValueError(f"label column {label_column!r} has missing values")
    codes, uniques = pd.factorize(labels, sort=True)
    if len(uniques) < 2:
        raise ValueError("need at least 2 classes")
    return _Ctx(
        frame=frame.reset_index(drop=True),
        label_column=label_column,
        id_column=id_column,
        features=features,
        classes=np.asarray(uniques),
        codes=np.asarray(codes, dtype=np.int64),
        rng=np.random.default_rng([seed, stream]),
        rate=rate,
        seed=seed,
    )


def _n_inplace(ctx: _Ctx) -> int:
    return int(round(ctx.rate * len(ctx.frame)))


def _n_added(ctx: _Ctx) -> int:
    if ctx.rate <= 0:
        return 0
    return max(1, int(round(ctx.rate * len(ctx.frame) / (1.0 - ctx.rate))))


def _decimals(values: pd.Series) -> int | None:
    """Observed decimal precision: 0 for integer columns, d for floats whose
    finite values all have at most d <= 6 decimals, None otherwise."""
    if pd.api.types.is_integer_dtype(values):
        return 0
    v = values.to_numpy(dtype=float, na_value=np.nan)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    for d in range(7):
        s = v * 10.0**d
        if np.all(np.abs(s - np.round(s)) <= 1e-9 * np.maximum(1.0, np.abs(s))):
            return d
    return None


def _as_dtype(values: np.ndarray, like: pd.Series) -> Any:
    """Cast new numeric values back to the column's dtype."""
    dtype = like.dtype
    if pd.api.types.is_integer_dtype(dtype):
        values = np.round(values)
    try:
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return values


def _label_values(ctx: _Ctx, codes: np.ndarray) -> Any:
    values = ctx.classes[codes]
    try:
        return pd.array(values, dtype=ctx.frame[ctx.label_column].dtype)
    except (TypeError, ValueError):
        return values


def _other_class(codes: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return (codes + rng.integers(1, n_classes, size=len(codes))) % n_classes


def _new_ids(ids: pd.Series, k: int) -> Any:
    """k new ids unique against `ids`, continuing the existing scheme."""
    if k == 0:
        return ids.iloc[:0].to_numpy()
    if pd.api.types.is_integer_dtype(ids):
        start = int(ids.max()) + 1 if len(ids) else 0
        return _as_dtype(np.arange(start, start + k), ids)
    if pd.api.types.is_float_dtype(ids):
        start = float(np.nanmax(ids.to_numpy(dtype=float))) + 1.0
        return np.arange(k, dtype=float) + np.floor(start)
    text = ids.astype("str")
    prefixes = text.str.rstrip("0123456789")
    digits = None
    if prefixes.nunique(dropna=False) == 1 and not text.isna().any():
        prefix = str(prefixes.iloc[0])
        digits = text.str.slice(start=len(prefix))
        if not (digits.str.len() > 0).all():
            digits = None
    if digits is not None:
        width = int(digits.str.len().max())
        start = int(digits.astype(np.int64).max()) + 1
        new = prefix + pd.Series(np.arange(start, start + k)).astype(str).str.zfill(width)
    else:
        new = "added_" + pd.Series(np.arange(k)).astype(str).str.zfill(max(6, len(str(k))))
        if new.isin(text).any():
            new = new + "_" + pd.Series(np.arange(k)).astype(str) + "_" + str(len(text))
    return pd.array(new.to_numpy(dtype=object), dtype=ids.dtype) if ids.dtype != object else new.to_numpy(dtype=object)


def _numeric_matrix(ctx: _Ctx, rows: np.ndarray | None = None) -> np.ndarray:
    sub = ctx.frame[ctx.features] if rows is None else ctx.frame[ctx.features].iloc[rows]
    return sub.to_numpy(dtype=float, na_value=np.nan)


def _filled_matrix(ctx: _Ctx) -> np.ndarray:
    """Feature matrix with NaN/inf replaced by column medians (for models)."""
    X = _numeric_matrix(ctx)
    bad = ~np.isfinite(X)
    if bad.any():
        Xm = np.where(bad, np.nan, X)
        med = np.nanmedian(Xm, axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        X = np.where(bad, med[None, :], X)
    return X


def _round_to_precision(ctx: _Ctx, values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for j, c in enumerate(ctx.features):
        d = _decimals(ctx.frame[c])
        if d is not None:
            out[:, j] = np.round(out[:, j], d)
    return out


def _feature_std(ctx: _Ctx) -> np.ndarray:
    X = _numeric_matrix(ctx)
    X = np.where(np.isfinite(X), X, np.nan)
    std = np.nanstd(X, axis=0)
    return np.where(np.isfinite(std), std, 0.0)


def _make_rows(
    ctx: _Ctx,
    base_rows: np.ndarray,
    features: np.ndarray | None,
    label_codes: np.ndarray | None,
) -> pd.DataFrame:
    """New rows copied from `base_rows` with features / labels / ids replaced."""
    new = ctx.frame.iloc[base_rows].reset_index(drop=True)
    if features is not None:
        for j, c in enumerate(ctx.features):
            new[c] = _as_dtype(features[:, j], ctx.frame[c])
    if label_codes is not None:
        new[ctx.label_column] = _label_values(ctx, label_codes)
    if ctx.id_column is not None:
        new[ctx.id_column] = _new_ids(ctx.frame[ctx.id_column], len(new))
    return new


def _insert(ctx: _Ctx, new: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Scatter `new` rows (in random order) among the originals, whose
    relative order is kept.  Returns frame, is_poison, position of original
    row i in the output."""
    n, k = len(ctx.frame), len(new)
    rng = ctx.rng
    is_new = np.zeros(n + k, dtype=bool)
    is_new[rng.choice(n + k, size=k, replace=False)] = True
    order = np.empty(n + k, dtype=np.int64)
    order[~is_new] = np.arange(n)
    order[is_new] = n + rng.permutation(k)
    both = pd.concat([ctx.frame, new[ctx.frame.columns]], ignore_index=True)
    out = both.take(order).reset_index(drop=True)
    for c in ctx.frame.columns:  # concat may upcast (e.g. nullable ints); restore
        if out[c].dtype != ctx.frame[c].dtype:
            with contextlib.suppress(TypeError, ValueError):  # keep the upcast if it cannot go back
                out[c] = out[c].astype(ctx.frame[c].dtype)
    positions = np.flatnonzero(~is_new)
    return out, is_new, positions


def _copy_frame(ctx: _Ctx) -> pd.DataFrame:
    return ctx.frame.copy().reset_index(drop=True)


def _cv_scores(ctx: _Ctx, n_folds: int = 3, max_fit_rows: int = 100_000) -> np.ndarray:
    """Out-of-fold logistic-regression class scores (n x C logits).  Each
    fold's model is fitted on at most `max_fit_rows` rows of the other folds
    (a seeded subsample) so 1M rows stay fast."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _filled_matrix(ctx)
    y = ctx.codes
    n, C = len(y), len(ctx.classes)
    rng = np.random.default_rng([ctx.seed, 9101])
    fold = rng.permutation(n) % n_folds
    scores = np.zeros((n, C))
    for f in range(n_folds):
        train = np.flatnonzero(fold != f)
        if len(train) > max_fit_rows:
            train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
        test = np.flatnonzero(fold == f)
        present = np.unique(y[train])
        if len(present) < 2:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        model.fit(X[train], y[train])
        dec = model.decision_function(X[test])
        if dec.ndim == 1:
            full = np.zeros((len(test), 2))
            full[:, 1] = dec
            dec = full
        scores[np.ix_(test, present)] = dec
        missing = np.setdiff1d(np.arange(C), present)
        if len(missing):
            scores[np.ix_(test, missing)] = -np.inf
    return scores


def _fit_linear(ctx: _Ctx, X: np.ndarray, max_fit_rows: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on raw features; returns per-class weights W (C x d)
    and intercepts b (C), so class scores are X @ W.T + b (binary: class 0
    scores 0)."""
    from sklearn.linear_model import LogisticRegression

    y = ctx.codes
    n = len(y)
    rng = np.random.default_rng([ctx.seed, 9102])
    rows = np.arange(n) if n <= max_fit_rows else np.sort(rng.choice(n, size=max_fit_rows, replace=False))
    mean = X[rows].mean(axis=0)
    scale = X[rows].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = LogisticRegression(max_iter=500).fit((X[rows] - mean) / scale, y[rows])
    coef, icpt = model.coef_, model.intercept_
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        icpt = np.array([0.0, icpt[0]])
    W = coef / scale[None, :]
    b = icpt - W @ mean
    return W, b


def _describe(name: str, text: str, k: int, total: int) -> str:
    return f"{name}: {text} ({k} of {total} rows, {k / max(total, 1):.2%} poison)"


# --------------------------------------------------------------------------
# label-flip attacks (in place)
# --------------------------------------------------------------------------


def random_flips(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
) -> Poisoned:
    """Relabel ``round(rate * n)`` uniformly chosen rows to a different,
    uniformly chosen class.  Rows stay in place."""
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column,
                   stream=101, need_numeric=False)
    n, C, k = len(ctx.frame), len(ctx.classes), _n_inplace(ctx)
    idx = np.sort(ctx.rng.choice(n, size=k, replace=False))
    codes = ctx.codes.copy()
    codes[idx] = _other_class(codes[idx], C, ctx.rng)
    out = _copy_frame(ctx)
    out[label_column] = _label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    return Poisoned(out, is_poison, _describe("random_flips", "labels flipped to a random other class", k, n),
                    {"attack": "random_flips", "n_poison": k, "rate": k / n})


def margin_flips(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_folds: int = 3,
) -> Poisoned:
    """Targeted flips of the rows closest to the decision boundary.

    A ``n_folds``-fold cross-validated logistic regression (standardised
    numeric features; each fold's model fitted on at most 100k rows) scores
    every row out of fold.  The margin is the given class's logit minus the
    best other class's logit.  The ``round(rate * n)`` rows with the smallest
    non-negative margin (correctly classified but least confidently; rows
    with negative margins only if there are not enough) get the runner-up
    class as their new label.  Rows stay in place.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=102)
    n, k = len(ctx.frame), _n_inplace(ctx)
    scores = _cv_scores(ctx, n_folds=n_folds)
    own = scores[np.arange(n), ctx.codes]
    others = scores.copy()
    others[np.arange(n), ctx.codes] = -np.inf
    runner_up = others.argmax(axis=1)
    margin = own - others[np.arange(n), runner_up]
    key = np.where(margin >= 0, margin, np.inf)
    # tie-break by a seeded random key so equal margins do not favour early rows
    order = np.lexsort((ctx.rng.random(n), -np.where(margin < 0, margin, 0.0), key))
    idx = np.sort(order[:k])
    codes = ctx.codes.copy()
    codes[idx] = runner_up[idx]
    out = _copy_frame(ctx)
    out[label_column] = _label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    return Poisoned(
        out, is_poison,
        _describe("margin_flips", "labels of the rows nearest the CV logistic boundary flipped to the runner-up class",
                  k, n),
        {"attack": "margin_flips", "n_poison": k, "rate": k / n,
         "max_flipped_margin": float(margin[idx].max()) if k else None, "n_folds": n_folds},
    )


def bad_source(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_bad_sources: int = 1,
    source_column: str = "source",
    max_source_share: float = 0.08,
) -> Poisoned:
    """Flip labels only within ``n_bad_sources`` sources.

    The bad sources are drawn at random among sources holding at most
    ``max_source_share`` of the rows (ValueError if fewer are eligible).
    ``round(rate * n)`` rows, chosen uniformly among the bad sources' rows,
    get a random other class; when the bad sources hold fewer rows than
    that, every one of their rows is flipped and the realised rate is lower
    (``details["capped"]`` is True).  Rows stay in place.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column,
                   stream=107, need_numeric=False)
    if source_column not in ctx.frame.columns:
        raise ValueError(f"source column {source_column!r} not in frame")
    n, C = len(ctx.frame), len(ctx.classes)
    src_codes, src_names = pd.factorize(ctx.frame[source_column], sort=True)
    counts = np.bincount(src_codes[src_codes >= 0], minlength=len(src_names))
    eligible = np.flatnonzero(counts <= max_source_share * n)
    if len(eligible) < n_bad_sources:
        raise ValueError(
            f"only {len(eligible)} source(s) hold at most {max_source_share:.0%} of rows; "
            f"cannot pick {n_bad_sources}"
        )
    chosen = np.sort(ctx.rng.choice(eligible, size=n_bad_sources, replace=False))
    pool = np.flatnonzero(np.isin(src_codes, chosen))
    want = _n_inplace(ctx)
    k = min(want, len(pool))
    idx = np.sort(ctx.rng.choice(pool, size=k, replace=False))
    codes = ctx.codes.copy()
    codes[idx] = _other_class(codes[idx], C, ctx.rng)
    out = _copy_frame(ctx)
    out[label_column] = _label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    names = [str(src_names[i]) for i in chosen]
    return Poisoned(
        out, is_poison,
        _describe("bad_source", f"labels flipped inside source(s) {', '.join(names)}", k, n),
        {"attack": "bad_source", "bad_sources": names, "n_poison": k, "rate": k / n,
         "source_rows": int(len(pool)), "flip_fraction_within": k / max(len(pool), 1),
         "capped": bool(k < want)},
    )


# --------------------------------------------------------------------------
# backdoor (in place)
# --------------------------------------------------------------------------


def backdoor(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_trigger_features: int = 3,
    target_label: Any = None,
    quantile_range: tuple[float, float] = (0.85, 0.95),
) -> Poisoned:
    """Tabular backdoor: a fixed value pattern on a few features, relabelled.

    ``n_trigger_features`` feature columns are drawn at random; each gets a
    trigger value = an observed value of that column at a random quantile in
    ``quantile_range`` (so it is plausible alone and already rounded like
    the column).  ``round(rate * n)`` rows drawn from the non-target classes
    (capped by their number) get all trigger values and the target label.
    ``target_label`` defaults to the least frequent class (ties: the larger
    label).  Rows stay in place.
    details: ``{"trigger": {col: value}, "target": label, ...}``.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=104)
    n = len(ctx.frame)
    if not 1 <= n_trigger_features <= len(ctx.features):
        raise ValueError(f"n_trigger_features must be in 1..{len(ctx.features)}")
    if target_label is None:
        counts = np.bincount(ctx.codes, minlength=len(ctx.classes))
        target_code = int(len(counts) - 1 - np.argmin(counts[::-1]))
    else:
        hits = np.flatnonzero(ctx.classes == target_label)
        if not len(hits):
            raise ValueError(f"target_label {target_label!r} is not a class of {label_column!r}")
        target_code = int(hits[0])
    target = ctx.classes[target_code]
    cols = [ctx.features[i] for i in np.sort(ctx.rng.choice(len(ctx.features), n_trigger_features, replace=False))]
    lo, hi = quantile_range
    trigger: dict[str, Any] = {}
    for c in cols:
        v = ctx.frame[c].to_numpy(dtype=float, na_value=np.nan)
        v = v[np.isfinite(v)]
        value = float(np.quantile(v, ctx.rng.uniform(lo, hi), method="inverted_cdf"))
        trigger[c] = int(round(value)) if pd.api.types.is_integer_dtype(ctx.frame[c]) else value
    pool = np.flatnonzero(ctx.codes != target_code)
    k = min(_n_inplace(ctx), len(pool))
    idx = np.sort(ctx.rng.choice(pool, size=k, replace=False))
    out = _copy_frame(ctx)
    for c, value in trigger.items():
        arr = out[c].to_numpy(copy=True)
        arr[idx] = value
        out[c] = _as_dtype(arr, ctx.frame[c])
    codes = ctx.codes.copy()
    codes[idx] = target_code
    out[label_column] = _label_values(ctx, codes)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[idx] = True
    target_py = target.item() if hasattr(target, "item") else target
    return Poisoned(
        out, is_poison,
        _describe("backdoor", f"{len(cols)}-feature trigger {trigger} relabelled to {target_py!r}", k, n),
        {"attack": "backdoor", "trigger": trigger, "target": target_py, "n_poison": k, "rate": k / n},
    )


# --------------------------------------------------------------------------
# attacks that add rows
# --------------------------------------------------------------------------


def boundary_points(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    step_range: tuple[float, float] = (0.6, 0.9),
    noise: float = 0.02,
) -> Poisoned:
    """Biggio-style boundary poison: rows moved toward the boundary, with
    flipped labels (added rows).

    A logistic regression is fitted on the numeric features (at most 100k
    rows).  For each new row: a base row of class ``a`` that the model
    classifies as ``a`` (drawn uniformly, so classes contribute in proportion
    to their size) and another class ``b`` (random among the others).  The
    base row moves along the straight line toward class ``b``'s centroid;
    on that line the model's ``a``-vs-``b`` score is linear, so the crossing
    point ``lam*`` is exact, and the row is placed at ``u * lam*`` with ``u``
    uniform in ``step_range`` (60-90% of the way to the boundary, still on
    ``a``'s side).  Gaussian noise of ``noise`` x each feature's std is added,
    values are rounded to each column's precision, and the row gets label
    ``b``.  Sitting just inside ``a``'s region with ``b``'s label, these rows
    pull the boundary into ``a``'s territory.  Other columns (categoricals,
    source) are copied from the base row; ids are new.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=103)
    n, C, k = len(ctx.frame), len(ctx.classes), _n_added(ctx)
    rng = ctx.rng
    X = _filled_matrix(ctx)
    W, b = _fit_linear(ctx, X)
    centroids = np.stack([
        X[ctx.codes == c].mean(axis=0) if np.any(ctx.codes == c) else np.zeros(X.shape[1]) for c in range(C)
    ])
    pred = (X @ W.T + b).argmax(axis=1)
    eligible = np.flatnonzero(pred == ctx.codes)
    if len(eligible) == 0:
        eligible = np.arange(n)
    base = eligible[rng.integers(0, len(eligible), size=k)]
    a = ctx.codes[base]
    to = _other_class(a, C, rng)
    Wd = W[a] - W[to]  # a-vs-b direction per new row
    bd = b[a] - b[to]
    f0 = np.einsum("ij,ij->i", X[base], Wd) + bd  # > 0 on a's side
    f1 = np.einsum("ij,ij->i", centroids[to], Wd) + bd
    denom = f0 - f1
    lam_star = np.where(denom > 0, f0 / np.where(denom > 0, denom, 1.0), 0.5)
    lam_star = np.clip(lam_star, 0.0, 1.0)
    lam = lam_star * rng.uniform(step_range[0], step_range[1], size=k)
    moved = X[base] + lam[:, None] * (centroids[to] - X[base])
    moved += rng.normal(size=moved.shape) * (noise * _feature_std(ctx))[None, :]
    moved = _round_to_precision(ctx, moved)
    new = _make_rows(ctx, base, moved, to)
    out, is_poison, _ = _insert(ctx, new)
    return Poisoned(
        out, is_poison,
        _describe("boundary_points", "rows moved toward the LR boundary with flipped labels added", k, n + k),
        {"attack": "boundary_points", "mode": "toward_boundary_flipped", "n_poison": k, "rate": k / (n + k),
         "step_range": tuple(step_range), "noise": noise,
         "mean_step": float(lam.mean()) if k else None},
    )


def near_duplicate_flood(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    n_seeds: int = 3,
    noise: float = 0.02,
) -> Poisoned:
    """Flood of near-duplicates of ``n_seeds`` real rows (added rows).

    Seeds are drawn uniformly; the ``k`` new rows are split as evenly as
    possible among them.  Each copy's numeric feature j is
    ``seed_j + delta`` with ``delta ~ N(0, (noise * std_j / 3)^2)`` clipped to
    ``+-noise * std_j``, truncated toward zero to the column's observed
    decimal precision (integer columns stay integer), so
    ``|copy_j - seed_j| <= noise * std_j`` always holds.  Copies keep the
    seed's label and every other column; ids are new.
    details: ``{"seeds": [input positions], "seed_ids": [...], ...}``.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=105)
    n, k = len(ctx.frame), _n_added(ctx)
    rng = ctx.rng
    n_seeds = int(min(max(1, n_seeds), n))
    seeds = np.sort(rng.choice(n, size=n_seeds, replace=False))
    base = seeds[np.arange(k) % n_seeds]
    X = _numeric_matrix(ctx, base)
    std = _feature_std(ctx)
    bound = noise * std
    delta = np.clip(rng.normal(size=X.shape) * (bound / 3.0)[None, :], -bound, bound)
    new_x = X.copy()
    for j, c in enumerate(ctx.features):
        d = _decimals(ctx.frame[c])
        if d is None:
            new_x[:, j] = X[:, j] + delta[:, j]
        else:
            g = 10.0 ** (-d)
            cand = np.round(X[:, j] + np.trunc(delta[:, j] / g) * g, d)
            too_far = ~(np.abs(cand - X[:, j]) <= bound[j] * (1 + 1e-9))
            new_x[:, j] = np.where(too_far, X[:, j], cand)
    new = _make_rows(ctx, base, new_x, None)
    out, is_poison, _ = _insert(ctx, new)
    seed_ids = (ctx.frame[ctx.id_column].iloc[seeds].tolist() if ctx.id_column else None)
    return Poisoned(
        out, is_poison,
        _describe("near_duplicate_flood", f"near-copies of {n_seeds} rows (noise <= {noise} std) added", k, n + k),
        {"attack": "near_duplicate_flood", "seeds": seeds.tolist(), "seed_ids": seed_ids,
         "noise": noise, "n_poison": k, "rate": k / (n + k)},
    )


def conflicting_copies(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    noise: float = 0.005,
    exact_fraction: float = 0.5,
) -> Poisoned:
    """Copies of real rows with a flipped label (added rows).

    ``k`` distinct rows (with replacement only if ``k > n``) are copied; a
    random ``exact_fraction`` of the copies are exact, the rest get Gaussian
    noise of ``noise`` x each feature's std, rounded to the column's
    precision.  Every copy gets a random other class and a new id.  Only the
    copies are marked poison (their originals are clean rows).
    details: ``{"originals": [input positions of the copied rows], ...}``.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=106)
    n, C, k = len(ctx.frame), len(ctx.classes), _n_added(ctx)
    rng = ctx.rng
    base = rng.choice(n, size=k, replace=k > n)
    X = _numeric_matrix(ctx, base)
    noisy = rng.random(k) >= exact_fraction
    jitter = rng.normal(size=X.shape) * (noise * _feature_std(ctx))[None, :]
    new_x = np.where(noisy[:, None], _round_to_precision(ctx, X + jitter), X)
    to = _other_class(ctx.codes[base], C, rng)
    new = _make_rows(ctx, base, new_x, to)
    out, is_poison, _ = _insert(ctx, new)
    return Poisoned(
        out, is_poison,
        _describe("conflicting_copies", "copies of real rows with flipped labels added", k, n + k),
        {"attack": "conflicting_copies", "originals": np.sort(base).tolist(), "n_exact": int((~noisy).sum()),
         "noise": noise, "n_poison": k, "rate": k / (n + k)},
    )


def clean_label_collision(
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    rate: float = 0.03,
    random_state: int = 0,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    target_index: int | None = None,
    base_label: Any = None,
    base_weight: float = 0.1,
    noise: float = 0.02,
) -> Poisoned:
    """Shafahi-style feature collision in raw feature space (added rows).

    A target row (``target_index``, a position in the input; random by
    default) of class ``t`` is chosen, and a base class ``b != t``
    (``base_label``; random by default).  Each new row starts from a random
    real row of class ``b`` and is perturbed to collide with the target: its
    features are ``target + base_weight * (base - target)`` (the minimiser
    of ``||x - target||^2 + beta ||x - base||^2`` with
    ``beta = base_weight / (1 - base_weight)``) plus Gaussian noise of
    ``noise`` x each feature's std, rounded to each column's precision.  It
    keeps the base row's label ``b`` and other columns (label "correct for
    its source"); ids are new.  Only the added rows are poison; the target
    itself is clean.
    details: target position in the input and output, its id, ``t``, ``b``.
    """
    ctx = _context(frame, label_column, rate, random_state, feature_columns, id_column, stream=108)
    n, C, k = len(ctx.frame), len(ctx.classes), _n_added(ctx)
    rng = ctx.rng
    if target_index is None:
        target_index = int(rng.integers(0, n))
    target_index = int(target_index)
    if not 0 <= target_index < n:
        raise ValueError(f"target_index must be in 0..{n - 1}")
    t = int(ctx.codes[target_index])
    if base_label is None:
        b = int(_other_class(np.array([t]), C, rng)[0])
    else:
        hits = np.flatnonzero(ctx.classes == base_label)
        if not len(hits) or hits[0] == t:
            raise ValueError(f"base_label {base_label!r} must be a class other than the target's")
        b = int(hits[0])
    pool = np.flatnonzero(ctx.codes == b)
    base = pool[rng.integers(0, len(pool), size=k)]
    X = _filled_matrix(ctx)
    target_x = X[target_index]
    moved = target_x[None, :] + base_weight * (X[base] - target_x[None, :])
    moved += rng.normal(size=moved.shape) * (noise * _feature_std(ctx))[None, :]
    moved = _round_to_precision(ctx, moved)
    new = _make_rows(ctx, base, moved, np.full(k, b))
    out, is_poison, positions = _insert(ctx, new)
    tl, bl = ctx.classes[t], ctx.classes[b]
    tl = tl.item() if hasattr(tl, "item") else tl
    bl = bl.item() if hasattr(bl, "item") else bl
    return Poisoned(
        out, is_poison,
        _describe("clean_label_collision",
                  f"class-{bl!r} rows colliding with target row {target_index} (class {tl!r}) added", k, n + k),
        {"attack": "clean_label_collision", "target_index": target_index,
         "target_position": int(positions[target_index]),
         "target_id": (ctx.frame[ctx.id_column].iloc[target_index] if ctx.id_column else None),
         "target_label": tl, "poison_label": bl, "base_weight": base_weight, "noise": noise,
         "target_features": {c: float(v) for c, v in zip(ctx.features, target_x)},
         "n_poison": k, "rate": k / (n + k)},
    )


ATTACKS: dict[str, Callable[..., Poisoned]] = {
    "random_flips": random_flips,
    "margin_flips": margin_flips,
    "boundary_points": boundary_points,
    "backdoor": backdoor,
    "near_duplicate_flood": near_duplicate_flood,
    "conflicting_copies": conflicting_copies,
    "bad_source": bad_source,
    "clean_label_collision": clean_label_collision,
}
