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

from poison_expectations.core.columns import column_not_found, reference_roles
from poison_expectations.core.errors import InputError
from poison_expectations.core.features import FeatureEncoder, as_text
from poison_expectations.stores.io import read_table
from poison_expectations.core.memory import ensure_fits
from poison_expectations.core.neighbors import Neighbors, find_neighbors
from poison_expectations.core.signals.base import Signal, SignalResult

# Peak copies of the encoded matrix a run holds at once (the matrix, the kNN
# index's copy, a model's binned copy and temporaries): the memory estimate.
MATRIX_COPIES = 3


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
    max_memory_mb: int | None = None  # limits.max_memory_mb (None: a share of the free memory)
    reference_lacks: tuple[str, ...] = ()  # roles ("id", "source") the reference has no column for

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
                    self._neighbors[key] = self._find(self.batch.X, indexed, k, against)
            return self._neighbors[key]

    @property
    def fitted(self) -> Table:
        """The table signals fit on: the trusted reference, else the batch itself."""
        return self.reference if self.reference is not None else self.batch

    def fitted_neighbors(self, k: int | None = None) -> Neighbors:
        """k-NN of the fitted rows among themselves, self excluded."""
        return self.reference_neighbors(k) if self.reference is not None else self.neighbors("self", k)

    def reference_neighbors(self, k: int | None = None) -> Neighbors:
        """k-NN of the reference rows among themselves (for reference baselines)."""
        k = k or self.options.k
        key = ("reference-self", k)
        with self._lock:
            if key not in self._neighbors:
                self._neighbors[key] = self._find(self.require_reference().X, None, k, "reference-self")
            return self._neighbors[key]

    def _find(self, query: np.ndarray, indexed: np.ndarray | None, k: int, what: str) -> Neighbors:
        """find_neighbors (k capped at the indexed rows), after the memory check."""
        table = "reference" if what != "self" else "batch"
        n_indexed = query.shape[0] if indexed is None else indexed.shape[0]
        if n_indexed < (2 if indexed is None else 1):
            raise InputError(f"the {table} has {n_indexed} rows; neighbour checks need more")
        k_eff = min(k, n_indexed)
        # kNN output (int64 + float32, with working copies) and the index's copy of the rows
        need = query.shape[0] * k_eff * 12 * 3 + n_indexed * query.shape[1] * 4 * 2
        self.ensure_memory(need, f"the {k_eff}-nearest-neighbour search over {n_indexed} {table} rows")
        return find_neighbors(query, indexed, k=k, exact_max_rows=self.options.exact_max_rows,
                              random_state=self.options.random_state)

    def ensure_memory(self, nbytes: float, what: str) -> None:
        """Refuse (InputError) before allocating about `nbytes` that would not fit."""
        ensure_fits(nbytes, what, self.max_memory_mb)

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
            else:
                self._results[key] = self._results.pop(key)  # keep last-requested order (see results)
            return self._results[key]

    def results(self) -> list[SignalResult]:
        """Every computed result, least recently requested first, so an aggregator
        (per-source statistics) can take the latest result of each signal name."""
        with self._lock:
            return list(self._results.values())

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)


# -- building ---------------------------------------------------------------

def build_analysis(frame: pd.DataFrame, roles: Roles, options: Options,
                   reference: pd.DataFrame | None = None, *, max_memory_mb: int | None = None) -> Analysis:
    """Check the roles against the data and encode batch (and reference)."""
    _check_roles(roles)
    frame = _string_columns(frame, "batch")
    _check_table(frame, roles, "batch")
    ref_roles, lacks = roles, ()
    if reference is not None:
        reference = _string_columns(reference, "reference")
        ref_roles, lacks = reference_roles([str(c) for c in reference.columns], roles)
        _check_table(reference, ref_roles, "reference")
    features = roles.resolved_features(frame)
    if not features:
        raise InputError("no feature columns left besides label, id and source")
    if reference is not None:
        missing = [c for c in features if c not in reference.columns]
        if missing:
            raise column_not_found("reference", "feature", missing[0], [str(c) for c in reference.columns])
    encoder = FeatureEncoder(features, roles.embedding_columns, options.nan_policy, options.max_onehot_categories)
    encoder.fit(reference if reference is not None else frame)
    rows = len(frame) + (len(reference) if reference is not None else 0)
    ensure_fits(rows * encoder.n_features * 4 * MATRIX_COPIES,
                f"the encoded feature matrix ({rows} rows x {encoder.n_features} encoded features)", max_memory_mb)
    classes, y_batch, y_ref = _encode_labels(frame, reference, roles.label_column)
    id_name = roles.id_column or "row_index"
    batch = _table(frame, encoder, y_batch, roles)
    ref = _table(reference, encoder, y_ref, ref_roles) if reference is not None else None
    return Analysis(roles, options, batch, ref, encoder, classes, id_name, max_memory_mb=max_memory_mb,
                    reference_lacks=lacks)


def _string_columns(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Roles name columns by text; a frame from the Python API may use 0, 1, ..."""
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{what}: duplicate column names {repeated}")
    return frame.set_axis(names, axis=1)


def _check_roles(roles: Roles) -> None:
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


def _check_table(frame: pd.DataFrame, roles: Roles, what: str) -> None:
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
                             f"{_plain(dupes.iloc[0])!r}")
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


def _plain(value):
    """numpy scalars as Python ones, so messages read 3, not np.int64(3)."""
    return value.item() if isinstance(value, np.generic) else value


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
    sources = as_text(frame[roles.source_column]).to_numpy() if roles.source_column else None
    return Table(frame, X, y, ids, sources)


# -- process cache ------------------------------------------------------------

_CACHE: "OrderedDict[tuple, Analysis]" = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
_REFERENCES: dict[str, pd.DataFrame] = {}
_REFERENCE_FILES: dict[str, tuple[tuple, pd.DataFrame]] = {}  # path -> (stat key, frame read)


def register_reference(name: str, frame: pd.DataFrame) -> None:
    """Make a reference table available to expectations by name (in-process)."""
    _REFERENCES[name] = frame


def load_reference(name: str | None, *, max_rows: int | None = None,
                   max_memory_mb: int | None = None) -> tuple[pd.DataFrame | None, Any]:
    """A registered reference, or a CSV/Parquet path; plus a cache key for it.

    A file is read again when its size or modification time changed, so a
    long-lived process (an Airflow worker) never validates against a stale copy.
    """
    if name is None:
        return None, None
    if name in _REFERENCES:
        frame = _REFERENCES[name]
        return frame, ("registered", name, id(frame))
    path = Path(name)
    if not path.exists():
        raise InputError(f"reference {name}: file not found")
    stat = path.stat()
    key = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _REFERENCE_FILES.get(name)
    if cached is not None and cached[0] == key:
        return cached[1], key
    frame = read_table(path, max_rows=max_rows, max_memory_mb=max_memory_mb)
    _REFERENCE_FILES[name] = (key, frame)
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


def get_analysis(frame: pd.DataFrame, roles: Roles, options: Options, reference: str | None = None, *,
                 max_memory_mb: int | None = None) -> Analysis:
    """The cached Analysis for this batch content, roles, options and reference."""
    ref_frame, ref_key = load_reference(reference)
    key = (fingerprint(frame), roles, options, ref_key)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    analysis = build_analysis(frame, roles, options, ref_frame, max_memory_mb=max_memory_mb)
    with _CACHE_LOCK:
        _CACHE[key] = analysis
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return analysis


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
    _REFERENCES.clear()
    _REFERENCE_FILES.clear()


def cached_frames() -> list[pd.DataFrame]:
    """The batch frames of the cached analyses, newest first (used to find a
    checkpoint's batch again after GX ran it in this process)."""
    with _CACHE_LOCK:
        return [analysis.batch.frame for analysis in reversed(_CACHE.values())]
