"""The data roles, the feature/neighbour options, an encoded table, and the
checks a raw table must pass before it is encoded. Shared by the analysis
and the profile; imports nothing else of the package but errors and columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from poison_expectations.core.columns import column_not_found
from poison_expectations.core.errors import InputError
from poison_expectations.core.params.shared import shared_param


@dataclass(frozen=True)
class Roles:
    """Which column plays which part."""

    label_column: str | None = None
    id_column: str | None = None
    source_column: str | None = None
    feature_columns: tuple[str, ...] | None = None
    embedding_columns: tuple[str, ...] = ()

    def resolved_features(self, frame: pd.DataFrame) -> tuple[str, ...]:
        if self.feature_columns:
            return tuple(self.feature_columns)
        skip = {self.label_column, self.id_column, self.source_column}
        return tuple(str(c) for c in frame.columns if c not in skip)


@dataclass(frozen=True)
class Options:
    """The shared feature/neighbour options; defaults declared in core/params/shared.py."""

    nan_policy: str = shared_param("nan_policy").default
    max_onehot_categories: int = shared_param("max_onehot_categories").default
    k: int = shared_param("k").default
    exact_max_rows: int = shared_param("exact_max_rows").default
    random_state: int = shared_param("random_state").default
    fdr_q: float = shared_param("fdr_q").default  # BH level of every signal's row flags (verdicts.q)


@dataclass
class Table:
    """An encoded table: features, label codes, ids and sources."""

    frame: pd.DataFrame | None  # None for a reference loaded from a profile
    X: np.ndarray
    y: np.ndarray | None  # int codes into Analysis.classes, or None without a label
    ids: np.ndarray
    sources: np.ndarray | None

    @property
    def n(self) -> int:
        return self.X.shape[0]


def string_columns(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Roles name columns by text; a frame from the Python API may use 0, 1, ..."""
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{what}: duplicate column names {repeated}")
    return frame.set_axis(names, axis=1)


def check_roles(roles: Roles) -> None:
    """One column, one role: a label among the features would make every
    label look consistent, and an id or source column used twice is a typo."""
    named = [("label", roles.label_column), ("id", roles.id_column), ("source", roles.source_column)]
    seen: dict[str, str] = {}
    for role, column in named:
        if column is None:
            continue
        if column in seen:
            raise InputError(f"column '{column}' is given as both the {seen[column]} and the {role} column")
        seen[column] = role
    features = list(roles.feature_columns or ())
    for column in features:
        if column in seen and seen[column] in ("label", "id"):
            raise InputError(f"feature column '{column}' is the {seen[column]} column; leave it out of --features")
    repeated = sorted({c for c in features if features.count(c) > 1})
    if repeated:
        raise InputError(f"feature column '{repeated[0]}' is listed more than once")


def check_table(frame: pd.DataFrame, roles: Roles, what: str) -> None:
    if len(frame) == 0:
        raise InputError(f"{what}: the table has no rows")
    names = [str(c) for c in frame.columns]
    for role, column in (("label", roles.label_column), ("id", roles.id_column), ("source", roles.source_column)):
        if column is not None and column not in names:
            raise column_not_found(what, role, column, names)
    for column in roles.feature_columns or ():
        if column not in names:
            raise column_not_found(what, "feature", column, names)
    if roles.id_column is not None:
        ids = frame[roles.id_column]
        _check_scalar(ids, f"{what}: id column '{roles.id_column}'")
        if ids.isna().any():
            raise InputError(f"{what}: id column '{roles.id_column}' has missing values")
        dupes = ids[ids.duplicated()]
        if len(dupes):
            raise InputError(f"{what}: id column '{roles.id_column}' has duplicate ids, e.g. "
                             f"{plain_value(dupes.iloc[0])!r}")
    if roles.label_column is not None:
        labels = frame[roles.label_column]
        _check_scalar(labels, f"{what}: label column '{roles.label_column}'")
        missing = labels.isna()
        if pd.api.types.is_float_dtype(labels):
            missing |= np.isinf(labels.to_numpy(dtype=np.float64, na_value=np.nan))
        if missing.any():
            raise InputError(f"{what}: label column '{roles.label_column}' has {int(missing.sum())} missing or "
                             "infinite values")


def _check_scalar(values: pd.Series, what: str) -> None:
    """Labels and ids are compared and hashed: lists, arrays and dicts cannot be."""
    if values.dtype != object:
        return
    bad = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
    if bad.any():
        raise InputError(f"{what} holds {type(values[bad].iloc[0]).__name__} values; it needs plain values "
                         "(text or numbers)")


def plain_value(value):
    """numpy scalars as Python ones, so messages read 3, not np.int64(3)."""
    return value.item() if isinstance(value, np.generic) else value
