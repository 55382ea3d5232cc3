"""What every attack shares: the :class:`Poisoned` bundle, the validated
attack context, and the helpers that edit, add and scatter rows.

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
from typing import Any, Sequence

import numpy as np
import pandas as pd


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


def check_seed(random_state: Any) -> int:
    """The seed as an int; bools, floats and negatives are refused (they would seed silently)."""
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be a non-negative int, got {random_state!r}")
    if random_state < 0:
        raise ValueError(f"random_state must be a non-negative int, got {random_state!r}")
    return int(random_state)


@dataclass
class AttackContext:
    """One attack's validated inputs and its random stream."""

    frame: pd.DataFrame  # input with a reset index (not copied)
    label_column: str
    id_column: str | None
    features: list[str]
    classes: np.ndarray  # sorted distinct labels
    codes: np.ndarray  # label code per row
    rng: np.random.Generator
    rate: float
    seed: int


def attack_context(
    frame: pd.DataFrame,
    label_column: str,
    rate: float,
    random_state: int,
    feature_columns: Sequence[str] | None,
    id_column: str | None,
    *,
    stream: int,
    need_numeric: bool = True,
) -> AttackContext:
    """Validate an attack's arguments; `stream` gives each attack its own random stream."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("frame must be a pandas DataFrame")
    if len(frame) < 2:
        raise ValueError("frame needs at least 2 rows")
    if label_column not in frame.columns:
        raise ValueError(f"label column {label_column!r} not in frame")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    seed = check_seed(random_state)
    if id_column is None:
        id_column = next((c for c in ("row_id", "id") if c in frame.columns), None)
    elif id_column not in frame.columns:
        raise ValueError(f"id column {id_column!r} not in frame")
    features = _feature_columns(frame, label_column, id_column, feature_columns, need_numeric)
    labels = frame[label_column]
    if labels.isna().any():
        raise ValueError(f"label column {label_column!r} has missing values")
    codes, uniques = pd.factorize(labels, sort=True)
    if len(uniques) < 2:
        raise ValueError("need at least 2 classes")
    return AttackContext(
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


def _feature_columns(frame: pd.DataFrame, label_column: str, id_column: str | None,
                     feature_columns: Sequence[str] | None, need_numeric: bool) -> list[str]:
    """The given feature columns (checked), or every numeric non-bool column but the label and id."""
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
    return features


def n_inplace(ctx: AttackContext) -> int:
    return int(round(ctx.rate * len(ctx.frame)))


def n_added(ctx: AttackContext) -> int:
    if ctx.rate <= 0:
        return 0
    return max(1, int(round(ctx.rate * len(ctx.frame) / (1.0 - ctx.rate))))


def decimals(values: pd.Series) -> int | None:
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


def as_dtype(values: np.ndarray, like: pd.Series) -> Any:
    """Cast new numeric values back to the column's dtype."""
    dtype = like.dtype
    if pd.api.types.is_integer_dtype(dtype):
        values = np.round(values)
    try:
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return values


def label_values(ctx: AttackContext, codes: np.ndarray) -> Any:
    values = ctx.classes[codes]
    try:
        return pd.array(values, dtype=ctx.frame[ctx.label_column].dtype)
    except (TypeError, ValueError):
        return values


def other_class(codes: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return (codes + rng.integers(1, n_classes, size=len(codes))) % n_classes


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for descriptions and details)."""
    return value.item() if hasattr(value, "item") else value


def new_ids(ids: pd.Series, k: int) -> Any:
    """k new ids unique against `ids`, continuing the existing scheme."""
    if k == 0:
        return ids.iloc[:0].to_numpy()
    if pd.api.types.is_integer_dtype(ids):
        start = int(ids.max()) + 1 if len(ids) else 0
        return as_dtype(np.arange(start, start + k), ids)
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


def numeric_matrix(ctx: AttackContext, rows: np.ndarray | None = None) -> np.ndarray:
    sub = ctx.frame[ctx.features] if rows is None else ctx.frame[ctx.features].iloc[rows]
    return sub.to_numpy(dtype=float, na_value=np.nan)


def filled_matrix(ctx: AttackContext) -> np.ndarray:
    """Feature matrix with NaN/inf replaced by column medians (for models)."""
    X = numeric_matrix(ctx)
    bad = ~np.isfinite(X)
    if bad.any():
        Xm = np.where(bad, np.nan, X)
        med = np.nanmedian(Xm, axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        X = np.where(bad, med[None, :], X)
    return X


def round_to_precision(ctx: AttackContext, values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for j, c in enumerate(ctx.features):
        d = decimals(ctx.frame[c])
        if d is not None:
            out[:, j] = np.round(out[:, j], d)
    return out


def feature_std(ctx: AttackContext) -> np.ndarray:
    X = numeric_matrix(ctx)
    X = np.where(np.isfinite(X), X, np.nan)
    std = np.nanstd(X, axis=0)
    return np.where(np.isfinite(std), std, 0.0)


def make_rows(
    ctx: AttackContext,
    base_rows: np.ndarray,
    features: np.ndarray | None,
    label_codes: np.ndarray | None,
) -> pd.DataFrame:
    """New rows copied from `base_rows` with features / labels / ids replaced."""
    new = ctx.frame.iloc[base_rows].reset_index(drop=True)
    if features is not None:
        for j, c in enumerate(ctx.features):
            new[c] = as_dtype(features[:, j], ctx.frame[c])
    if label_codes is not None:
        new[ctx.label_column] = label_values(ctx, label_codes)
    if ctx.id_column is not None:
        new[ctx.id_column] = new_ids(ctx.frame[ctx.id_column], len(new))
    return new


def insert_rows(ctx: AttackContext, new: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
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


def copy_frame(ctx: AttackContext) -> pd.DataFrame:
    return ctx.frame.copy().reset_index(drop=True)


def describe(name: str, text: str, k: int, total: int) -> str:
    return f"{name}: {text} ({k} of {total} rows, {k / max(total, 1):.2%} poison)"
