"""One batch, prepared once: roles, encoded features, labels, neighbours.

Every signal and every GX metric of a validation run reads the same
`Analysis`, so the feature matrix and neighbour graphs are built once per
batch, never once per expectation. `get_analysis` keeps the last few in a
small process cache keyed by the batch's content and the options.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import InputError
from .features import FeatureEncoder
from .io import read_table
from .neighbors import Neighbors, find_neighbors
from .signals.base import Signal, SignalResult

MAX_CLASSES_FRACTION = 0.5  # more distinct float labels than this share of rows looks continuous


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
    nan_policy: str = "impute"
    max_onehot_categories: int = 20
    k: int = 10
    exact_max_rows: int = 50_000
    random_state: int = 0


@dataclass
class Table:
    """An encoded table: features, label codes, ids and sources."""

    frame: pd.DataFrame
    X: np.ndarray
    y: np.ndarray | None  # int codes into Analysis.classes, or None without a label
    ids: np.ndarray
    sources: np.ndarray | None

    @property
    def n(self) -> int:
        return self.X.shape[0]


@dataclass
class Analysis:
    roles: Roles
    options: Options
    batch: Table
    reference: Table | None
    encoder: FeatureEncoder
    classes: np.ndarray | None  # original label values, index = code
    id_name: str
    _neighbors: dict = field(default_factory=dict)
    _results: dict = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    progress: Callable[[str], Any] | None = None

    # -- shared, computed on first use -----------------------------------
    def neighbors(self, against: str = "self", k: int | None = None) -> Neighbors:
        """k-NN of the batch rows, against the batch (self excluded) or the reference."""
        k = k or self.options.k
        key = (against, k)
        with self._lock:
            if key not in self._neighbors:
                # a larger k already computed answers a smaller one
                larger = [kk for (a, kk) in self._neighbors if a == against and kk >= k]
                if larger:
                    big = self._neighbors[(against, min(larger))]
                    self._neighbors[key] = Neighbors(big.indices[:, :k], big.distances[:, :k], big.exact,
                                                     big.recall_estimate)
                else:
                    indexed = None if against == "self" else self.require_reference().X
                    self._neighbors[key] = find_neighbors(
                        self.batch.X, indexed, k=k, exact_max_rows=self.options.exact_max_rows,
                        random_state=self.options.random_state)
            return self._neighbors[key]

    def reference_neighbors(self, k: int | None = None) -> Neighbors:
        """k-NN of the reference rows among themselves (for reference baselines)."""
        k = k or self.options.k
        key = ("reference-self", k)
        with self._lock:
            if key not in self._neighbors:
                self._neighbors[key] = find_neighbors(
                    self.require_reference().X, None, k=k, exact_max_rows=self.options.exact_max_rows,
                    random_state=self.options.random_state)
            return self._neighbors[key]

    def require_reference(self) -> Table:
        if self.reference is None:
            raise InputError("this signal needs a reference table (--reference)")
        return self.reference

    def require_labels(self) -> np.ndarray:
        if self.batch.y is None:
            raise InputError("this signal needs a label column (--label)")
        return self.batch.y

    def result(self, signal: Signal) -> SignalResult:
        """Run `signal` once per analysis; later calls return the same result."""
        key = signal.cache_key()
        with self._lock:
            if key not in self._results:
                if self.progress:
                    self.progress(signal.name)
                result = signal.run(self)
                result.ids = self.batch.ids
                self._results[key] = result
            return self._results[key]

    def results(self) -> list[SignalResult]:
        return list(self._results.values())

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)


# -- building ---------------------------------------------------------------

def build_analysis(frame: pd.DataFrame, roles: Roles, options: Options,
                   reference: pd.DataFrame | None = None) -> Analysis:
    """Check the roles against the data and encode batch (and reference)."""
    _check_table(frame, roles, "batch")
    if reference is not None:
        _check_table(reference, roles, "reference")
    features = roles.resolved_features(frame)
    if not features:
        raise InputError("no feature columns left besides label, id and source")
    if reference is not None:
        missing = [c for c in features if c not in reference.columns]
        if missing:
            raise InputError(f"reference: feature column '{missing[0]}' not found")
    encoder = FeatureEncoder(features, roles.embedding_columns, options.nan_policy, options.max_onehot_categories)
    encoder.fit(reference if reference is not None else frame)
    classes, y_batch, y_ref = _encode_labels(frame, reference, roles.label_column)
    id_name = roles.id_column or "row_index"
    batch = _table(frame, encoder, y_batch, roles)
    ref = _table(reference, encoder, y_ref, roles) if reference is not None else None
    return Analysis(roles, options, batch, ref, encoder, classes, id_name)


def _check_table(frame: pd.DataFrame, roles: Roles, what: str) -> None:
    if len(frame) == 0:
        raise InputError(f"{what}: the table has no rows")
    names = [str(c) for c in frame.columns]
    for role, column in (("label", roles.label_column), ("id", roles.id_column), ("source", roles.source_column)):
        if column is not None and column not in names:
            raise InputError(f"{what}: {role} column '{column}' not found (columns: {', '.join(names[:12])})")
    for column in roles.feature_columns or ():
        if column not in names:
            raise InputError(f"{what}: feature column '{column}' not found")
    if roles.id_column is not None:
        ids = frame[roles.id_column]
        if ids.isna().any():
            raise InputError(f"{what}: id column '{roles.id_column}' has missing values")
        dupes = ids[ids.duplicated()]
        if len(dupes):
            raise InputError(f"{what}: id column '{roles.id_column}' has duplicate ids, e.g. {dupes.iloc[0]!r}")
    if roles.label_column is not None and frame[roles.label_column].isna().any():
        count = int(frame[roles.label_column].isna().sum())
        raise InputError(f"{what}: label column '{roles.label_column}' has {count} missing values")


def _encode_labels(frame, reference, label_column):
    if label_column is None:
        return None, None, None
    parts = [frame[label_column]] + ([reference[label_column]] if reference is not None else [])
    combined = pd.concat(parts, ignore_index=True).astype("object").map(_normalise_label)
    codes, classes = pd.factorize(combined, sort=False)
    n = len(frame)
    return np.asarray(classes, dtype=object), codes[:n].astype(np.int64), (
        codes[n:].astype(np.int64) if reference is not None else None)


def _normalise_label(value):
    """numpy scalars to Python ones, so 1, 1.0 and np.int64(1) are one class."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _table(frame, encoder, y, roles) -> Table:
    X = encoder.transform(frame)
    ids = frame[roles.id_column].to_numpy() if roles.id_column else np.arange(len(frame))
    sources = frame[roles.source_column].astype(str).to_numpy() if roles.source_column else None
    return Table(frame, X, y, ids, sources)


def label_looks_continuous(frame: pd.DataFrame, label_column: str) -> str | None:
    """A reason string when the label looks like a regression target."""
    labels = frame[label_column]
    if not pd.api.types.is_float_dtype(labels):
        return None
    values = labels.dropna().to_numpy()
    non_integer = not np.all(np.equal(np.mod(values, 1), 0))
    distinct = len(np.unique(values))
    if non_integer and distinct > max(20, MAX_CLASSES_FRACTION * len(values) ** 0.5 * 2):
        return (f"label column '{label_column}' looks continuous ({distinct} distinct non-integer values); "
                "label-consistency checks need class labels")
    return None


# -- process cache ------------------------------------------------------------

_CACHE: "OrderedDict[tuple, Analysis]" = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
_REFERENCES: dict[str, pd.DataFrame] = {}


def register_reference(name: str, frame: pd.DataFrame) -> None:
    """Make a reference table available to expectations by name (in-process)."""
    _REFERENCES[name] = frame


def load_reference(name: str | None) -> tuple[pd.DataFrame | None, Any]:
    """A registered reference, or a CSV/Parquet path; plus a cache key for it."""
    if name is None:
        return None, None
    if name in _REFERENCES:
        frame = _REFERENCES[name]
        return frame, ("registered", name, id(frame))
    path = Path(name)
    if not path.exists():
        raise InputError(f"reference {name}: file not found")
    stat = path.stat()
    key = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    frame = read_table(path)
    _REFERENCES[name] = frame
    return frame, key


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a table (falls back to identity for unhashable cells)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((tuple(map(str, frame.columns)), frame.shape)).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError:
        digest.update(str(id(frame)).encode())
    return digest.hexdigest()


def get_analysis(frame: pd.DataFrame, roles: Roles, options: Options, reference: str | None = None) -> Analysis:
    """The cached Analysis for this batch content, roles, options and reference."""
    ref_frame, ref_key = load_reference(reference)
    key = (fingerprint(frame), roles, options, ref_key)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    analysis = build_analysis(frame, roles, options, ref_frame)
    with _CACHE_LOCK:
        _CACHE[key] = analysis
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return analysis


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
    _REFERENCES.clear()


def cached_frames() -> list[pd.DataFrame]:
    """The batch frames of the cached analyses, newest first (used to find a
    checkpoint's batch again after GX ran it in this process)."""
    with _CACHE_LOCK:
        return [analysis.batch.frame for analysis in reversed(_CACHE.values())]
