"""One batch, prepared once: roles, encoded features, labels, neighbours.

Every signal and every GX metric of a validation run reads the same
`Analysis` (the run context: the runner creates it and makes it active, see
`core/context.py`; the GX metrics reach it through one shared metric), so
the feature matrix, the neighbour graphs, the fitted signal states and the
results are computed once per run, never once per expectation.

The trusted side comes either from a reference table (encoded and fitted
here, lazily, signal by signal) or from a stored profile (`core/profile.py`:
the same fitted states, loaded instead of refitted).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from poison_expectations.core.columns import column_not_found, reference_roles
from poison_expectations.core.errors import InputError
from poison_expectations.core.features import FeatureEncoder, as_text
from poison_expectations.core.memory import ensure_fits
from poison_expectations.core.neighbors import RECALL_SAMPLE, NeighborIndex, Neighbors
from poison_expectations.core.verdicts.evidence import attach_evidence
from poison_expectations.core.tables import (  # noqa: F401  (Roles, Options, Table: re-exported)
    Options,
    Roles,
    Table,
    check_roles,
    check_table,
    plain_value,
    string_columns,
)

if TYPE_CHECKING:
    from poison_expectations.core.profile import Profile

# Peak copies of the encoded matrix a run holds at once (the matrix, the kNN
# index's copy, a model's binned copy and temporaries): the memory estimate.
MATRIX_COPIES = 3
SELF_MARGIN = 1  # extra neighbours searched in a table's graph among its own rows (see Analysis._graph)


@dataclass
class Analysis:
    roles: Roles
    options: Options
    batch: Table
    reference: Table | None
    encoder: FeatureEncoder
    classes: np.ndarray | None  # original label values, index = code
    id_name: str
    # fitted signal states by signal cache key: loaded from a profile, else fitted here on first use
    states: dict = field(default_factory=dict)
    reference_index: NeighborIndex | None = None  # over reference.X; built on first use unless loaded
    batch_index: NeighborIndex | None = None
    profile: "Profile | None" = None  # the stored profile the trusted side came from, if any
    fits_profile: bool = False  # fitting a profile: states must also score other batches later
    _neighbors: dict = field(default_factory=dict)
    _results: dict = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    progress: Callable[[str], Any] | None = None
    max_memory_mb: int | None = None  # limits.max_memory_mb (None: a share of the free memory)
    reference_lacks: tuple[str, ...] = ()  # roles ("id", "source") the reference has no column for
    recall_sample: int = RECALL_SAMPLE  # exact queries that estimate an approximate search's recall (0: none)
    _derived: dict = field(default_factory=dict)

    # -- shared, computed on first use -----------------------------------
    def neighbors(self, against: str = "self", k: int | None = None) -> Neighbors:
        """k-NN of the batch rows, against the batch (self excluded) or the reference."""
        if against == "self":
            return self._graph("self", k, lambda kk: self._find(self.batch.X, None, kk, "batch"))
        return self._graph(against, k,
                           lambda kk: self._find(self.batch.X, self.require_reference().X, kk, "reference"))

    def _graph(self, kind: str, k: int | None, search: Callable[[int], Neighbors]) -> Neighbors:
        """A k-NN graph computed once per kind: a larger one already computed
        answers a smaller k. A table's graph among its own rows is searched with
        SELF_MARGIN more neighbours than asked, so a signal that needs each
        row's neighbours' lists without that row (influence: k + 1) reads the
        same search instead of a second one."""
        k = k or self.options.k
        key = (kind, k)
        with self._lock:
            if key not in self._neighbors:
                larger = [kk for (a, kk) in self._neighbors if a == kind and kk >= k]
                if not larger:
                    big = search(k + (SELF_MARGIN if kind in ("self", "reference-self") else 0))
                    self._neighbors[(kind, big.k)] = big
                    larger = [big.k]
                big = self._neighbors[(kind, min(larger))]
                self._neighbors[key] = Neighbors(big.indices[:, :k], big.distances[:, :k], big.exact,
                                                 big.recall_estimate)
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
        ref = self.require_reference()
        return self._graph("reference-self", k, lambda kk: self._find(ref.X, ref.X, kk, "reference", self_search=True))

    def _find(self, query: np.ndarray, indexed: np.ndarray | None, k: int, table: str,
              self_search: bool = False) -> Neighbors:
        """kNN (k capped at the indexed rows) after the memory check. The
        reference is indexed once per run (or loaded from the profile)."""
        self_search = self_search or indexed is None
        n_indexed = query.shape[0] if indexed is None else indexed.shape[0]
        if n_indexed < (2 if self_search else 1):
            raise InputError(f"the {table} has {n_indexed} rows; neighbour checks need more")
        k_eff = min(k, n_indexed)
        # kNN output (int64 + float32, with working copies) and the index's copy of the rows
        need = query.shape[0] * k_eff * 12 * 3 + n_indexed * query.shape[1] * 4 * 2
        self.ensure_memory(need, f"the {k_eff}-nearest-neighbour search over {n_indexed} {table} rows")
        index = self.index_reference() if table == "reference" else self.index_batch()
        return index.search(query, k, self_search=self_search, random_state=self.options.random_state,
                            recall_sample=self.recall_sample)

    def search_rows(self, against: str, rows: np.ndarray, k: int) -> Neighbors:
        """k-NN of some rows only: batch rows against the batch ("self", own
        entry dropped) or the reference ("reference"), or reference rows among
        the reference ("reference-self"). For the few rows whose list of the
        usual k was too short (near duplicates' crowded spots)."""
        rows = np.asarray(rows, dtype=np.int64)
        table = self.reference if against == "reference-self" else self.batch
        assert table is not None
        query = table.X[rows]
        self.ensure_memory(len(rows) * k * 12 * 3, f"the {k}-nearest-neighbour search of {len(rows)} rows")
        index = self.index_batch() if against == "self" else self.index_reference()
        own = against != "reference"
        return index.search(query, k, self_search=own, random_state=self.options.random_state,
                            query_ids=rows if own else None, recall_sample=0)

    def index_batch(self) -> NeighborIndex:
        """The neighbour index over the batch rows, built once."""
        with self._lock:
            if self.batch_index is None:
                self.batch_index = NeighborIndex.build(self.batch.X, exact_max_rows=self.options.exact_max_rows)
            return self.batch_index

    def self_graphs(self) -> dict[int, Neighbors]:
        """The batch self-graph computed so far with the most neighbours, by its k
        (fitting a profile stores it; every smaller k is a slice of it)."""
        with self._lock:
            ks = [k for (what, k) in self._neighbors if what == "self"]
            return {max(ks): self._neighbors[("self", max(ks))]} if ks else {}

    def index_reference(self) -> NeighborIndex:
        """The neighbour index over the reference rows, built once."""
        with self._lock:
            if self.reference_index is None:
                self.reference_index = NeighborIndex.build(self.require_reference().X,
                                                           exact_max_rows=self.options.exact_max_rows)
            return self.reference_index

    def derived(self, key: tuple, make: Callable[[], Any]) -> Any:
        """A value derived from the batch or the reference (e.g. a signal's
        representation of its rows), made once per run and shared."""
        with self._lock:
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]

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

    def state_for(self, signal: Any) -> Any:
        """The signal's fitted state: stored in the profile, else fitted now on
        the trusted table (`fitted`) and kept for the rest of the run."""
        key = signal.cache_key()
        with self._lock:
            if key not in self.states:
                if self.profile is not None:
                    raise InputError(self.profile.missing_state_message(signal))
                self.states[key] = signal.fit(self)
            return self.states[key]

    def result(self, signal: Any) -> Any:
        """Run `signal` once per analysis; later calls return the same result.
        A signal that reads other signals' results (`inputs`) is keyed by the
        results it saw too, so it is recomputed when more have arrived."""
        key = signal.cache_key()
        if signal.inputs:
            key = key + (("inputs", tuple(sorted(r.signal for r in self.results() if r.signal != signal.name))),)
        with self._lock:
            if key not in self._results:
                if self.progress:
                    self.progress(signal.name)
                state = self.state_for(signal)
                result = signal.run(self, state)
                result.ids = self.batch.ids
                attach_evidence(signal, state, result, self)
                self._results[key] = result
            else:
                self._results[key] = self._results.pop(key)  # keep last-requested order (see results)
            return self._results[key]

    def results(self) -> list[Any]:
        """Every computed result, least recently requested first, so an aggregator
        (per-source statistics) can take the latest result of each signal name."""
        with self._lock:
            return list(self._results.values())

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)


# -- building ---------------------------------------------------------------

def ordered_by_inputs(signals: list[Any]) -> list[Any]:
    """Signals that read other signals' results (`inputs`) after those they read."""
    return sorted(signals, key=lambda s: bool(s.inputs))


def build_analysis(frame: pd.DataFrame, roles: Roles, options: Options,
                   reference: pd.DataFrame | None = None, *, profile: "Profile | None" = None,
                   max_memory_mb: int | None = None) -> Analysis:
    """Check the roles against the data and encode the batch, against a
    reference table (encoded here; signals fit on it when first asked), a
    stored profile (nothing refitted), or neither (a self-check)."""
    check_roles(roles)
    frame = string_columns(frame, "batch")
    check_table(frame, roles, "batch")
    if profile is not None:
        if reference is not None:
            raise InputError("give a reference table or a profile, not both")
        return _from_profile(frame, roles, options, profile, max_memory_mb)
    ref_roles, lacks = roles, ()
    if reference is not None:
        reference = string_columns(reference, "reference")
        ref_roles, lacks = reference_roles([str(c) for c in reference.columns], roles)
        check_table(reference, ref_roles, "reference")
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


def _from_profile(frame: pd.DataFrame, roles: Roles, options: Options, profile: "Profile",
                  max_memory_mb: int | None) -> Analysis:
    """The batch encoded by the profile's encoder, its labels coded by the
    profile's classes, the trusted side (rows, index, graphs, states) loaded."""
    profile.check_batch(frame, roles, options)
    encoder = profile.encoder
    ensure_fits(len(frame) * encoder.n_features * 4 * MATRIX_COPIES,
                f"the encoded feature matrix ({len(frame)} rows x {encoder.n_features} encoded features)",
                max_memory_mb)
    y = None
    if roles.label_column is not None and profile.classes is not None:
        labels = frame[roles.label_column].astype("object").map(_normalise_label)
        codes = pd.Index(list(profile.classes)).get_indexer(labels)
        if (codes < 0).any():
            unseen = plain_value(labels[codes < 0].iloc[0])
            raise InputError(f"label column '{roles.label_column}': value {unseen!r} is not among the profile's "
                             f"classes ({', '.join(map(repr, profile.classes[:10]))}); refit the profile on a "
                             "trusted table that has it")
        y = codes.astype(np.int64)
    batch = _table(frame, encoder, y, roles)
    analysis = Analysis(roles, options, batch, profile.table, encoder, profile.classes,
                        roles.id_column or "row_index", states=dict(profile.states),
                        reference_index=profile.index, profile=profile, max_memory_mb=max_memory_mb)
    analysis._neighbors.update({("reference-self", k): nb for k, nb in profile.graphs.items()})
    return analysis


def _encode_labels(frame, reference, label_column):
    if label_column is None:
        return None, None, None
    # the reference first: its classes keep the codes a profile fitted on it has
    parts = ([reference[label_column]] if reference is not None else []) + [frame[label_column]]
    combined = pd.concat(parts, ignore_index=True).astype("object").map(_normalise_label)
    codes, classes = pd.factorize(combined, sort=False)
    n_ref = len(reference) if reference is not None else 0
    return np.asarray(classes, dtype=object), codes[n_ref:].astype(np.int64), (
        codes[:n_ref].astype(np.int64) if reference is not None else None)


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
