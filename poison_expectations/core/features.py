"""Table -> numeric matrix, fitted once (on the reference when there is one).

Policy, applied column by column:
- numeric: robust scaling, (x - median) / IQR (falling back to the standard
  deviation, then 1, for columns with a zero IQR), clipped to +-CLIP so
  extreme magnitudes stay finite in float32;
- boolean: 0/1;
- datetime: seconds since the epoch, then as numeric;
- categorical (strings, objects, pandas categories): one-hot when the fitted
  column has at most `max_onehot_categories` levels (unseen levels encode as
  all zeros), otherwise frequency encoding (the level's share in the fitted
  data; unseen levels get 0);
- embedding columns (cells holding lists/arrays, or "[0.1, 0.2]" strings):
  expanded to one column per dimension and scaled by one shared robust scale;
- a column with no value at all in the fitted table is dropped and listed in
  `dropped` (nan_policy="reject": an input error);
- missing values (NaN, None, +-inf): with nan_policy="impute", numeric cells
  take the fitted median and every column that had a missing value in the
  fitted data gains a 0/1 indicator column; categorical NaN is its own level.
  With nan_policy="reject", any missing value is an input error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from poison_expectations.core.errors import InputError

CLIP = 1e4


@dataclass
class _ColumnPlan:
    name: str
    kind: str  # numeric | bool | onehot | frequency | embedding
    center: float = 0.0
    scale: float = 1.0
    fill: float = 0.0
    indicator: bool = False
    levels: list = field(default_factory=list)
    freqs: dict = field(default_factory=dict)
    dim: int = 0
    datetime: bool = False

    def width(self) -> int:
        base = {"onehot": len(self.levels), "embedding": self.dim}.get(self.kind, 1)
        return base + int(self.indicator)


class FeatureEncoder:
    """Fit on one table, transform any table with the same feature columns."""

    def __init__(self, columns, embedding_columns=(), nan_policy="impute", max_onehot_categories=20):
        self.columns = list(columns)
        self.embedding_columns = set(embedding_columns)
        self.nan_policy = nan_policy
        self.max_onehot = max_onehot_categories
        self.plans: list[_ColumnPlan] = []
        self.dropped: list[str] = []  # feature columns with no value at all in the fitted table

    # -- fitting -----------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> "FeatureEncoder":
        """Plan every column; an entirely empty one is dropped (named in
        `dropped`), unless nan_policy is reject: real exports carry empty columns."""
        if not self.columns:
            raise InputError("no feature columns to use: name them with --features")
        self.dropped = [name for name in self.columns
                        if name not in self.embedding_columns and _entirely_missing(frame[name])]
        if self.dropped and self.nan_policy == "reject":
            raise InputError(f"feature column '{self.dropped[0]}': every value is missing (nan_policy=reject)")
        kept = [name for name in self.columns if name not in self.dropped]
        if not kept:
            raise InputError(f"every feature column is empty ({', '.join(self.dropped[:12])}); nothing to check")
        self.plans = [self._plan(frame[name], name) for name in kept]
        return self

    def _plan(self, series: pd.Series, name: str) -> _ColumnPlan:
        if name in self.embedding_columns:
            matrix = _embedding_matrix(series, name)
            return _ColumnPlan(name, "embedding", center=0.0, scale=_robust_scale(matrix.ravel()), dim=matrix.shape[1])
        if pd.api.types.is_bool_dtype(series):
            return _ColumnPlan(name, "bool", indicator=bool(series.isna().any()))
        values, is_datetime = _as_numeric(series, name)
        if values is not None:
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise InputError(f"feature column '{name}': every value is missing or infinite")
            missing = finite.size < values.size
            if missing and self.nan_policy == "reject":
                raise InputError(f"feature column '{name}': {values.size - finite.size} missing or infinite values "
                                 "(nan_policy=reject)")
            median = float(np.median(finite))
            return _ColumnPlan(name, "numeric", center=median, scale=_robust_scale(finite), fill=median,
                               indicator=missing, datetime=is_datetime)
        text = series.astype("object")
        if text.isna().any() and self.nan_policy == "reject":
            raise InputError(f"feature column '{name}': {int(text.isna().sum())} missing values (nan_policy=reject)")
        counts = text.fillna("<NA>").map(str).value_counts()
        if len(counts) <= self.max_onehot:
            return _ColumnPlan(name, "onehot", levels=list(counts.index))
        return _ColumnPlan(name, "frequency", freqs=(counts / counts.sum()).to_dict())

    # -- storing -------------------------------------------------------------
    def to_state(self) -> dict:
        """Plain data (JSON) for a stored profile."""
        return {"columns": list(self.columns), "embedding_columns": sorted(self.embedding_columns),
                "nan_policy": self.nan_policy, "max_onehot_categories": self.max_onehot,
                "plans": [asdict(plan) for plan in self.plans], "dropped": list(self.dropped)}

    @classmethod
    def from_state(cls, state: dict) -> "FeatureEncoder":
        encoder = cls(state["columns"], state["embedding_columns"], state["nan_policy"],
                      state["max_onehot_categories"])
        encoder.plans = [_ColumnPlan(**plan) for plan in state["plans"]]
        encoder.dropped = list(state.get("dropped", []))  # profiles stored before empty columns were dropped
        return encoder

    # -- transforming ------------------------------------------------------
    @property
    def n_features(self) -> int:
        return sum(plan.width() for plan in self.plans)

    def feature_names(self) -> list[str]:
        names: list[str] = []
        for plan in self.plans:
            if plan.kind == "onehot":
                names += [f"{plan.name}={level}" for level in plan.levels]
            elif plan.kind == "embedding":
                names += [f"{plan.name}[{i}]" for i in range(plan.dim)]
            else:
                names.append(plan.name)
            if plan.indicator:
                names.append(f"{plan.name}__missing")
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), self.n_features), dtype=np.float32)
        at = 0
        for plan in self.plans:
            block = self._encode(plan, frame[plan.name])
            out[:, at:at + block.shape[1]] = block
            at += block.shape[1]
        return out

    def _encode(self, plan: _ColumnPlan, series: pd.Series) -> np.ndarray:
        n = len(series)
        if plan.kind == "embedding":
            matrix = _embedding_matrix(series, plan.name, plan.dim)
            return np.clip(matrix / plan.scale, -CLIP, CLIP)
        if plan.kind == "onehot":
            codes = pd.Categorical(series.astype("object").fillna("<NA>").map(str), categories=plan.levels).codes
            block = np.zeros((n, len(plan.levels)), dtype=np.float32)
            rows = np.flatnonzero(codes >= 0)
            block[rows, codes[rows]] = 1.0
            return block
        if plan.kind == "frequency":
            mapped = series.astype("object").fillna("<NA>").map(str).map(plan.freqs)
            return mapped.fillna(0.0).to_numpy(dtype=np.float32).reshape(-1, 1)
        if plan.kind == "bool":
            missing = series.isna().to_numpy()
            values = series.fillna(False).astype(bool).to_numpy(dtype=np.float32)
            return _with_indicator(values, missing, plan)
        values, _ = _as_numeric(series, plan.name)
        if values is None:
            raise InputError(f"feature column '{plan.name}': expected numeric values, got text")
        missing = ~np.isfinite(values)
        if missing.any() and self.nan_policy == "reject":
            raise InputError(f"feature column '{plan.name}': {int(missing.sum())} missing or infinite values "
                             "(nan_policy=reject)")
        values = np.where(missing, plan.fill, values)
        with np.errstate(over="ignore", invalid="ignore"):  # +-1e308 overflows to +-inf, then clips
            scaled = np.clip((values - plan.center) / plan.scale, -CLIP, CLIP)
        return _with_indicator(scaled.astype(np.float32), missing, plan)


def _entirely_missing(series: pd.Series) -> bool:
    """No value at all: every cell NaN/None (or +-inf in a numeric column)."""
    if series.isna().all():
        return True
    if pd.api.types.is_float_dtype(series):
        with np.errstate(invalid="ignore"):
            return not np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan)).any()
    return False


def _with_indicator(values: np.ndarray, missing: np.ndarray, plan: _ColumnPlan) -> np.ndarray:
    if not plan.indicator:
        return values.reshape(-1, 1)
    return np.column_stack([values, missing.astype(np.float32)])


def _robust_scale(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # magnitudes near 1e308 overflow; handled below
        q75, q25 = np.percentile(values, [75, 25])
        scale = (q75 - q25) / 1.349  # IQR of a unit normal, so scale ~ std on normal data
        if not np.isfinite(scale) or scale <= 0:
            scale = float(np.std(values))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return float(scale)


def _as_numeric(series: pd.Series, name: str) -> tuple[np.ndarray | None, bool]:
    """Float values of a numeric-like column, or None for a categorical one.

    An object column whose non-missing values are mostly numbers but not all
    is treated as garbage in a numeric column: an input error naming a value.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:  # time-zone aware: compare instants in UTC
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = series.to_numpy(dtype="datetime64[s]")  # seconds: any year fits, unlike nanoseconds
        values = stamps.astype(np.int64).astype(np.float64)
        values[np.isnat(stamps)] = np.nan
        return values, True
    if pd.api.types.is_timedelta64_dtype(series):
        return series.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan), False
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        with np.errstate(over="ignore", invalid="ignore"):
            return series.to_numpy(dtype=np.float64, na_value=np.nan), False
    if isinstance(series.dtype, pd.CategoricalDtype):
        return None, False
    present = series.dropna()
    if present.empty:
        return np.full(len(series), np.nan), False
    parsed = pd.to_numeric(as_text(present).str.strip(), errors="coerce")
    bad = parsed.isna()
    if bad.mean() < 0.5 and bad.any():
        example = present[bad].iloc[0]
        raise InputError(f"feature column '{name}': non-numeric value {str(example)[:50]!r} in a numeric column")
    if not bad.any():
        values = pd.to_numeric(series.astype("object").where(series.notna(), None).map(
            lambda v: v if v is None else str(v).strip()), errors="coerce")
        return values.to_numpy(dtype=np.float64, na_value=np.nan), False
    return None, False


def as_text(series: pd.Series) -> pd.Series:
    """str of every cell; bytes that are not UTF-8 are decoded with replacement
    characters instead of failing (pandas' astype(str) decodes bytes strictly),
    and missing cells become "nan" (pandas 3's astype(str) keeps them missing,
    which then breaks sorting and grouping of mixed values)."""
    try:
        text = series.astype(str)
    except (UnicodeDecodeError, TypeError, ValueError):
        text = series.map(lambda v: v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v))
    return text.astype(object).where(text.notna(), "nan")


def _embedding_matrix(series: pd.Series, name: str, dim: int | None = None) -> np.ndarray:
    rows = []
    for cell in series.tolist():
        if isinstance(cell, str):
            try:
                cell = json.loads(cell)
            except ValueError:
                raise InputError(f"embedding column '{name}': cannot parse {cell[:40]!r} as a vector") from None
        rows.append(np.asarray(cell, dtype=np.float32).ravel() if cell is not None else None)
    width = dim if dim is not None else max((len(r) for r in rows if r is not None), default=0)
    if width == 0:
        raise InputError(f"embedding column '{name}': no vectors found")
    matrix = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        if row is None:
            continue
        if len(row) != width:
            raise InputError(f"embedding column '{name}': row {i} has {len(row)} dimensions, expected {width}")
        matrix[i] = row
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
