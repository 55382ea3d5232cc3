"""A reference profile: the fitted state of a trusted table, fitted once and
used to score many batches without refitting (like a fitted scikit-learn
estimator). It holds the feature encoder, the label classes, the encoded
trusted rows, their neighbour index and graphs, and every signal's fitted
state, which includes each trusted row's own out-of-sample score.

Writing and reading it (without pickle) is `stores/profiles.py`; this module
is the in-memory form and the checks a batch must pass to be scored by it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from poison_expectations.core.errors import InputError
from poison_expectations.core.features import FeatureEncoder
from poison_expectations.core.neighbors import NeighborIndex, Neighbors
from poison_expectations.core.tables import Options, Roles, Table

FORMAT = "poison-expectations-profile"
FORMAT_VERSION = 1


@dataclass
class Profile:
    meta: dict[str, Any]  # format, versions, created, roles, options, config, schema, rows, data hash
    encoder: FeatureEncoder
    classes: np.ndarray | None
    table: Table  # the encoded trusted rows (frame None)
    index: NeighborIndex
    graphs: dict[int, Neighbors] = field(default_factory=dict)  # trusted rows' self-graphs by k
    states: dict[tuple, dict] = field(default_factory=dict)  # by signal cache key
    fitted_results: dict[str, dict] = field(default_factory=dict)  # self-check summary per signal

    @property
    def rows(self) -> int:
        return int(self.table.n)

    def missing_state_message(self, signal: Any) -> str:
        """Why a signal cannot be scored: the profile was fitted with other parameters."""
        fitted = {key[0]: dict(key[1]) for key in self.states}
        if signal.name not in fitted:
            return (f"profile: no fitted state for signal '{signal.name}' (fitted: "
                    f"{', '.join(sorted(fitted)) or 'none'}); refit the profile with that family enabled")
        wanted = dict(signal.cache_key()[1])
        differ = sorted(k for k in set(wanted) | set(fitted[signal.name])
                        if wanted.get(k) != fitted[signal.name].get(k))
        shown = ", ".join(f"{k}={fitted[signal.name].get(k)!r} (config: {wanted.get(k)!r})" for k in differ[:3])
        return f"profile: signal '{signal.name}' was fitted with {shown}; refit the profile with this config"

    def check_batch(self, frame: pd.DataFrame, roles: Roles, options: Options) -> None:
        """Refuse (InputError) a batch the profile was not made for: other roles,
        options, missing feature columns, or columns of another kind."""
        fitted_roles = self.meta["roles"]
        for role in ("label_column", "feature_columns", "embedding_columns"):
            mine = getattr(roles, role)
            mine = list(mine) if isinstance(mine, tuple) else mine
            if role == "feature_columns" and mine is None:
                continue  # the profile's own feature list applies
            if (mine or None) != (fitted_roles.get(role) or None):
                raise InputError(f"profile: fitted with {role}={fitted_roles.get(role)!r}, the run has {mine!r}")
        named = {roles.label_column, roles.id_column, roles.source_column} - {None}
        clash = [c for c in self.encoder.columns if c in named]
        if clash:
            raise InputError(f"profile: column '{clash[0]}' is one of the profile's features, the run gives it "
                             "another role")
        fitted_options = self.meta["options"]
        for key in ("nan_policy", "max_onehot_categories"):
            if getattr(options, key) != fitted_options.get(key):
                raise InputError(f"profile: fitted with features.{key}={fitted_options.get(key)!r}, "
                                 f"the config has {getattr(options, key)!r}")
        schema = dict(self.meta["schema"])
        for column in self.encoder.columns:
            if column not in frame.columns:
                raise InputError(f"batch: feature column '{column}' of the profile not found")
            kind, fitted_kind = column_kind(frame[column]), schema.get(column)
            if fitted_kind is not None and kind != fitted_kind and "empty" not in (kind, fitted_kind):
                raise InputError(f"batch: column '{column}' holds {kind} values, the profile was fitted on "
                                 f"{fitted_kind} values")


def column_kind(series: pd.Series) -> str:
    """A coarse kind of a column, stable across CSV and Parquet readers."""
    if series.isna().all():
        return "empty"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names and cell values (row order matters)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (embedding lists): their text
        digest.update(frame.astype(str).to_csv(index=False).encode())
    return digest.hexdigest()
