"""Items of the trigger search: the values a trigger can be made of.

Per feature column of the raw table: each categorical level, each exact
numeric value (and "is missing"), and each of `n_bins` quantile bins of a
numeric column with more distinct values than bins (edges fitted on the
reference when one is given). Only items held by at least `min_support`
batch rows are kept. Each column's items are one integer code per row
(-1 = none), so counting (item, label) pairs is one bincount.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


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


def item_columns(series: pd.Series, ref_series: pd.Series | None, name: str, n_bins: int,
                 min_support: int) -> list[ItemColumn]:
    values = _numeric(series)
    if values is None:
        return [_levels(series, ref_series, name, min_support)]
    ref_values = None if ref_series is None else _numeric(ref_series)
    out = [_exact_values(values, ref_values, name, min_support)]
    finite = values[np.isfinite(values)]
    fit = finite if ref_values is None else ref_values[np.isfinite(ref_values)]
    if len(np.unique(finite)) > n_bins and len(fit):
        out.append(_bins(values, ref_values, fit, name, n_bins))
    return [ic for ic in out if ic.labels]


def _numeric(series: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return None
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _fmt(value: float) -> str:
    if np.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _exact_values(values, ref_values, name, min_support) -> ItemColumn:
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
    if ref_values is not None:
        ref_key = np.where(np.isfinite(ref_values), ref_values, np.inf)
        ref_codes = np.full(len(ref_key), -1, dtype=np.int64)
        if len(kept):
            pos = np.clip(np.searchsorted(kept, ref_key), 0, len(kept) - 1)
            match = kept[pos] == ref_key
            ref_codes[match] = pos[match]
    return ItemColumn(name, "value", labels, codes, ref_codes, described)


def _bins(values, ref_values, fit, name, n_bins) -> ItemColumn:
    edges = np.unique(np.quantile(fit, np.linspace(0, 1, n_bins + 1)[1:-1]))

    def code(v):
        out = np.searchsorted(edges, v, side="right").astype(np.int64)
        out[~np.isfinite(v)] = -1
        return out

    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    labels, described = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if not np.isfinite(lo):
            labels.append(f"< {_fmt(hi)}")
        elif not np.isfinite(hi):
            labels.append(f">= {_fmt(lo)}")
        else:
            labels.append(f"in [{_fmt(lo)}, {_fmt(hi)})")
        described.append({"low": float(lo) if np.isfinite(lo) else None,
                          "high": float(hi) if np.isfinite(hi) else None})
    return ItemColumn(name, "bin", labels, code(values), None if ref_values is None else code(ref_values),
                      described)


def _levels(series, ref_series, name, min_support) -> ItemColumn:
    text = series.astype("object").where(series.notna(), "<NA>").map(str)
    counts = text.value_counts()
    kept = [level for level, count in counts.items() if count >= min_support]
    lookup = {level: i for i, level in enumerate(kept)}
    codes = text.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    ref_codes = None
    if ref_series is not None:
        ref_text = ref_series.astype("object").where(ref_series.notna(), "<NA>").map(str)
        ref_codes = ref_text.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    labels = ["is missing" if level == "<NA>" else f"= {level!r}" for level in kept]
    return ItemColumn(name, "level", labels, codes, ref_codes, [{"value": level} for level in kept])


def item_json(ic: ItemColumn, code: int) -> dict:
    return {"column": ic.column, "kind": ic.kind, "condition": ic.labels[code], **ic.values[code]}
