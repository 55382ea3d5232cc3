"""The shared config keys: schema version, seed, data roles, feature
encoding, neighbours and resource limits. Every expectation family gets the
data-role, feature and neighbour keys as fields (`EXPECTATION_KEYS`), and
signals take `k` and `random_state` from here (`signal_shared`)."""

from __future__ import annotations

from typing import Any

from poison_expectations.core.params.base import Param

RANDOM_STATE = Param(0, int, "Seed for every random choice (folds, sampling, indexes).", low=0, high=2 ** 32 - 1)
K = Param(10, int, "Neighbours per row for every neighbour-based signal.", low=1, high=200)

SHARED_SPEC: dict[str, Any] = {
    "version": Param(1, int, "Config schema version.", choices=(1,)),
    "random_state": RANDOM_STATE,
    "data": {
        "label_column": Param(None, str, "Column holding the training label.", nullable=True),
        "id_column": Param(None, str, "Unique row id; findings use row_index when absent.", nullable=True),
        "source_column": Param(None, str, "Contributor / provenance column, if any.", nullable=True),
        "feature_columns": Param(None, list, "Feature columns; default: all but label, id and source.",
                                 nullable=True, item_kind=str, note="null: every column but label, id and source"),
        "embedding_columns": Param([], list, "Columns holding embedding vectors (lists/arrays) to expand.",
                                   item_kind=str),
        "reference": Param(None, str, "Trusted reference table (CSV/Parquet path).", nullable=True,
                           note="trusted table; enables batch-against-reference gates"),
        "profile": Param(None, str, "Stored reference profile (`poison-check fit`), instead of a reference table.",
                         nullable=True, note="fitted reference (poison-check fit); scores without refitting"),
    },
    "features": {
        "nan_policy": Param("impute", str, "impute: median/mode plus a missing indicator; reject: NaN/inf is an "
                            "input error.", choices=("impute", "reject"),
                            note="impute (median + indicator) | reject"),
        "max_onehot_categories": Param(20, int, "Categoricals with at most this many levels are one-hot encoded, "
                                       "others frequency-encoded.", low=1, high=10_000),
    },
    "neighbors": {
        "k": K,
        "exact_max_rows": Param(50_000, int, "Up to this many indexed rows use exact search; above it an HNSW "
                                "index.", low=0, note="above this many indexed rows: HNSW approximate index"),
    },
    "verdicts": {
        "alpha": Param(0.01, float, "False-alarm rate of the whole checkpoint on a batch exchangeable with its "
                       "reference: each of the F batch gates tests at alpha / F (Bonferroni).", low=1e-6,
                       high=0.5, note="checkpoint false-alarm rate; each of F gates tests at alpha / F"),
        "q": Param(0.1, float, "False discovery rate of the flagged rows (Benjamini-Hochberg over row p-values).",
                   low=1e-6, high=0.5, note="expected share of clean rows among the flagged, at most"),
        "min_effect": Param(0.005, float, "A gate fails only when the lower confidence bound of the batch's "
                            "contaminated share exceeds this (so harmless drift in a huge batch passes).",
                            low=0.0, high=0.5, note="share of rows; 0.005 = 0.5%"),
        "combine": Param("cauchy", str, "How a row's p-values over the signals are combined: cauchy (Liu & Xie "
                         "2020) or bonferroni (min p times the number of signals); both valid under dependence.",
                         choices=("cauchy", "bonferroni"), note="cauchy | bonferroni"),
    },
    "limits": {
        "max_rows": Param(5_000_000, int, "Refuse a batch or reference with more rows than this, before loading "
                          "it whole (Parquet: from the footer; CSV: reads at most max_rows + 1 rows).", low=1,
                          note="refuse larger batches or references (checked before loading)"),
        "max_memory_mb": Param(None, int, "Memory budget (MiB) for each large allocation (loading a table, the "
                               "encoded feature matrix, a neighbour graph), estimated beforehand; larger work is "
                               "refused with exit 2. null: 75% of the memory free at that moment.", low=1,
                               nullable=True,
                               note="null: 75% of free memory; larger allocations are refused, never OOM-killed"),
    },
}

# The shared keys every poison expectation (and its metric) takes, by field
# name, with their place in the config.
EXPECTATION_KEYS: dict[str, tuple[str, ...]] = {
    "label_column": ("data", "label_column"),
    "feature_columns": ("data", "feature_columns"),
    "id_column": ("data", "id_column"),
    "source_column": ("data", "source_column"),
    "embedding_columns": ("data", "embedding_columns"),
    "reference": ("data", "reference"),
    "profile": ("data", "profile"),
    "nan_policy": ("features", "nan_policy"),
    "max_onehot_categories": ("features", "max_onehot_categories"),
    "k": ("neighbors", "k"),
    "exact_max_rows": ("neighbors", "exact_max_rows"),
    "random_state": ("random_state",),
    "fdr_q": ("verdicts", "q"),
    "gate_alpha": ("verdicts", "alpha"),
    "min_effect": ("verdicts", "min_effect"),
}


def shared_param(name: str) -> Param:
    """The declaration of a shared expectation key, by field name (e.g. 'k')."""
    node: Any = SHARED_SPEC
    for part in EXPECTATION_KEYS[name]:
        node = node[part]
    return node


def shared_values(config: dict[str, Any]) -> dict[str, Any]:
    """The shared expectation keys' values in a validated config."""
    out = {}
    for name, path in EXPECTATION_KEYS.items():
        node: Any = config
        for part in path:
            node = node[part]
        out[name] = node
    return out


def signal_shared(*names: str) -> dict[str, Param]:
    """The shared keys a family's signal takes (e.g. 'k', 'random_state')."""
    return {name: shared_param(name) for name in names}
