"""Items of the trigger search: the values a trigger can be made of.

Per feature column of the raw table: each categorical level, each exact
numeric value (and "is missing"), and each of `n_bins` quantile bins of a
numeric column with more distinct values than bins (edges fitted on the
reference when one is given). Only items held by at least `min_support`
batch rows are kept. Each column's items are one integer code per row
(-1 = none), so counting (item, label) pairs is one bincount.

The reference side is fitted once (`fit_column`, plain arrays): per column
its values (or levels) held by at least `min_support` reference rows with
a small integer code per reference row, and its bin edges with each row's
bin. Rarer reference values need no code: the search uses a reference
count only when it reaches `min_support` (else the reference's class
share), so they would change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from poison_expectations.core.errors import InputError


@dataclass
class ItemColumn:
    """The items of one feature column: code per row (-1 = none of them)."""

    column: str
    kind: str  # value | bin | level
    labels: list[str]
    codes: np.ndarray
    ref_codes: np.ndarray | None
    values: list = field(default_factory=list)  # JSON-able description per item


def class_counts(codes, y, n_items, n_classes) -> np.ndarray:
    has = codes >= 0
    flat = np.bincount(codes[has].astype(np.int64) * n_classes + y[has], minlength=n_items * n_classes)
    return flat.reshape(n_items, n_classes)


def fit_column(series: pd.Series, n_bins: int, min_support: int) -> dict:
    """The reference side of one column's items (see module doc)."""
    values = _numeric(series)
    if values is None:
        text = _text(series)
        counts = text.value_counts()
        kept = [level for level, count in counts.items() if count >= min_support]
        codes = text.map({level: i for i, level in enumerate(kept)}).fillna(-1).to_numpy(dtype=np.int64)
        return {"kind": "level", "levels": kept, "codes": _small(codes, len(kept))}
    key = np.where(np.isfinite(values), values, np.inf)
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    keep = counts >= min_support
    remap = np.full(len(uniq), -1, dtype=np.int64)
    remap[keep] = np.arange(int(keep.sum()))
    finite = values[np.isfinite(values)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])) if len(finite) else None
    return {"kind": "numeric", "values": uniq[keep], "codes": _small(remap[inverse], int(keep.sum())),
            "edges": edges, "bin_codes": None if edges is None else _small(_bin_codes(edges, values), len(edges) + 1)}


def item_columns(series: pd.Series, ref: dict | None, name: str, n_bins: int,
                 min_support: int) -> list[ItemColumn]:
    """The items of one batch column; `ref` is the column's fitted reference side."""
    values = _numeric(series)
    if ref is not None and ref["kind"] != ("level" if values is None else "numeric"):
        raise InputError(f"trigger patterns: column '{name}' is {'not ' if values is None else ''}numeric in the "
                         "batch but the reference's is the other way")
    if values is None:
        return [_levels(series, ref, name, min_support)]
    out = [_exact_values(values, ref, name, min_support)]
    finite = values[np.isfinite(values)]
    edges = ref["edges"] if ref is not None else (
        np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])) if len(finite) else None)
    if len(np.unique(finite)) > n_bins and edges is not None:
        out.append(_bins(values, None if ref is None else ref["bin_codes"], edges, name))
    return [ic for ic in out if ic.labels]


def _small(codes: np.ndarray, n: int) -> np.ndarray:
    """Codes (-1 .. n - 1) in the smallest signed integer type that holds them."""
    return codes.astype(np.min_scalar_type(-max(n, 1)))


def _text(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), "<NA>").map(str)


def _bin_codes(edges: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.searchsorted(edges, v, side="right").astype(np.int64)
    out[~np.isfinite(v)] = -1
    return out


def _numeric(series: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return None
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _fmt(value: float) -> str:
    if np.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _exact_values(values, ref, name, min_support) -> ItemColumn:
    """Numeric values held by at least `min_support` batch rows (NaN = 'is missing')."""
    key = np.where(np.isfinite(values), values, np.inf)  # every missing value is one item
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    keep = counts >= min_support
    remap = np.full(len(uniq), -1, dtype=np.int64)
    remap[keep] = np.arange(int(keep.sum()))
    codes = remap[inverse]
    kept = uniq[keep]
    labels = ["is missing" if not np.isfinite(v) else f"= {_fmt(v)}" for v in kept]
    described = [{"missing": True} if not np.isfinite(v) else {"value": float(v)} for v in kept]
    ref_codes = None
    if ref is not None:
        to_kept = np.full(len(ref["values"]) + 1, -1, dtype=np.int64)  # last slot: rows without a code
        if len(kept) and len(ref["values"]):
            pos = np.clip(np.searchsorted(kept, ref["values"]), 0, len(kept) - 1)
            match = kept[pos] == ref["values"]
            to_kept[:-1][match] = pos[match]
        ref_codes = to_kept[ref["codes"].astype(np.int64)]
    return ItemColumn(name, "value", labels, codes, ref_codes, described)


def _bins(values, ref_bin_codes, edges, name) -> ItemColumn:
    """Quantile bins (edges fitted on the reference, else the batch)."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    labels, described = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if not np.isfinite(lo):
            labels.append(f"< {_fmt(hi)}")
        elif not np.isfinite(hi):
            labels.append(f">= {_fmt(lo)}")
        else:
            labels.append(f"in [{_fmt(lo)}, {_fmt(hi)})")
        described.append({"low": float(lo) if np.isfinite(lo) else None,
                          "high": float(hi) if np.isfinite(hi) else None})
    ref_codes = None if ref_bin_codes is None else ref_bin_codes.astype(np.int64)
    return ItemColumn(name, "bin", labels, _bin_codes(edges, values), ref_codes, described)


def _levels(series, ref, name, min_support) -> ItemColumn:
    text = _text(series)
    counts = text.value_counts()
    kept = [level for level, count in counts.items() if count >= min_support]
    lookup = {level: i for i, level in enumerate(kept)}
    codes = text.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    ref_codes = None
    if ref is not None:
        to_kept = np.array([lookup.get(level, -1) for level in ref["levels"]] + [-1], dtype=np.int64)
        ref_codes = to_kept[ref["codes"].astype(np.int64)]
    labels = ["is missing" if level == "<NA>" else f"= {level!r}" for level in kept]
    return ItemColumn(name, "level", labels, codes, ref_codes, [{"value": level} for level in kept])


def item_json(ic: ItemColumn, code: int) -> dict:
    return {"column": ic.column, "kind": ic.kind, "condition": ic.labels[code], **ic.values[code]}


# -- helpers of the search and its report ------------------------------------

def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / min(|a|, |b|) of two sorted unique row arrays."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / min(len(a), len(b))


def confidence_lower(hits: int, support: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound of hits / support."""
    if hits <= 0:
        return 0.0
    return float(stats.beta.ppf(1 - confidence, hits, support - hits + 1))


def console_line(r: dict) -> str:
    ids = ", ".join(map(str, r["ids"][:5]))
    return (f"  {r['text']} -> label {r['label']!r}: {r['rows']} rows, confidence {r['confidence']:.2f}, "
            f"lift {r['lift']:.2f}; {r['unlike_share']:.0%} look like "
            f"{r['looks_like']!r} without these columns (e.g. {ids})")


def crossfit_reclassify(reclass, X: np.ndarray, y: np.ndarray, carrying: np.ndarray, rows: np.ndarray,
                        n_classes: int, columns: np.ndarray, folds: int = 2):
    """Self-check reclassification of a trigger's rows, cross-fitted: the carrying
    rows are split into `folds`; each fold's rows are predicted by a model trained
    on the batch minus that fold (the other folds' carriers included). Leaving
    out every carrier would remove the part of the class the pattern marks (a
    strong natural value, e.g. a low formant of one vowel), so clean carriers
    would look unlike their label by construction; a planted trigger's carriers
    are a minority of the region their other columns put them in, so the model
    still predicts that region's class for them. Returns a `Reclassified` with
    the folds' baseline errors pooled."""
    from poison_expectations.core.signals.representation import Reclassified

    marked = carrying.copy()
    marked[rows] = True
    fold = np.full(len(y), -1)
    fold[marked] = np.random.default_rng(reclass.random_state).permutation(int(marked.sum())) % folds
    predicted = np.zeros(len(rows), dtype=np.int64)
    wrong, seen = np.zeros(n_classes), np.zeros(n_classes)
    for f in range(folds):
        held = fold[rows] == f
        if not held.any():
            continue
        pool = fold != f
        out = reclass.run(X[pool], y[pool], X[rows[held]], n_classes, columns=columns)
        predicted[held] = out.predicted
        wrong += out.baseline_error * out.baseline_rows
        seen += out.baseline_rows
    error = np.divide(wrong, seen, out=np.zeros(n_classes), where=seen > 0)
    return Reclassified(predicted, error, seen.astype(np.int64))
