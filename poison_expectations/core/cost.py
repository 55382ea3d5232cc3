"""Time guard: estimate a run's seconds from its shapes before the costly
steps, and refuse a run over `limits.max_seconds` (as the memory guard
refuses one over `limits.max_memory_mb`), so a scheduled gate never holds an
Airflow slot for an hour. During the run, `Deadline.check` stops between
signals once the budget is spent.

The cost model (docs/hardening.md, "Time budget") sums, in seconds:

- each k-NN search: exact search `EXACT * queries * indexed rows * width`;
  an HNSW index (over `neighbors.exact_max_rows` rows)
  `HNSW * (queries + indexed rows) * width * log2(indexed rows)`;
- the label model (label consistency): HistGradientBoosting
  `trees * (TREE + TREE_WIDTH * w + TREE_CELL * rows per fit * w)`, w =
  min(width, 256), trees = fits x 100 rounds x (1 for two classes, else the
  learnable classes); logistic `LOGISTIC_CELL * fits * rows * w * classes`;
- every signal's own work: `c0 + c1 * classes + c2 * cells + c3 * cells *
  classes + c4 * cells * width` (`SIGNAL_COST`), cells = rows x width, rows
  = the rows it fits on plus the rows it scores, at most its
  `max_fit_rows` / `max_train_rows`; c0 and c1 (the set-up of fits) only
  when the signal fits.

The constants are non-negative least-squares fits to per-step timings of
synthetic runs on this project's 2-core machine at load 1.4-7
(`benchmarks/cost_model.py` runs the grid and fits them); the estimate is a
rough guide (within about 3x of the measured time on that grid), not a
promise. A profile skips the fits: only the batch is scored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.params import FAMILIES
from poison_expectations.core.signals.label_consistency import MAX_MODEL_FEATURES, fold_count

MODEL_ROUNDS = 100  # label consistency's HistGradientBoosting max_iter

EXACT = 1.33e-10  # s per query x indexed row x width (faiss flat, BLAS)
HNSW = 3.36e-07  # s per row x width x log2(rows) (build and queries)
TREE = 2.81e-04  # s per HistGradientBoosting tree, fixed part
TREE_WIDTH = 4.14e-05  # s per tree x feature (split finding over each feature's bins)
TREE_CELL = 1.32e-08  # s per tree x row x feature
LOGISTIC_CELL = 2.00e-07  # s per fit x row x feature x class (label model: logistic)
# signal name -> (c0, c1 per class, c2 per row x width, c3 per row x width x class, c4 per row x width^2)
SIGNAL_COST: dict[str, tuple[float, float, float, float, float]] = {
    "collision": (0.00539, 0.000188, 6.32e-09, 0, 0),
    "feature_clustering": (2.25, 0, 3.68e-06, 0, 3.63e-09),
    "influence": (0.152, 0.022, 0, 1.77e-07, 0),
    "label_consistency": (1.63, 0, 0, 0, 0),
    "near_duplicate": (0.0205, 0, 1.37e-07, 8.09e-11, 5.39e-13),
    "outlier": (0.437, 0, 7.43e-07, 4.73e-07, 1.49e-09),
    "spectral": (1.2, 0, 1.19e-06, 1.6e-07, 2.85e-08),
    "trigger": (3.08, 0, 3.3e-06, 2.42e-08, 7.64e-11),
}
DEFAULT_COST = (0.1, 0.0, 1.0e-7, 1.0e-8, 1.0e-9)  # a signal not measured (e.g. a new family)
ROW_CAPS = ("max_fit_rows", "max_train_rows")  # the parameters that bound the rows a signal fits on


@dataclass(frozen=True)
class Shape:
    """What the cost depends on, read off the prepared analysis."""

    batch_rows: int
    fitted_rows: int  # rows states are fitted on: the reference, the batch (self-check), 0 (profile)
    reference_rows: int  # rows the batch is searched against (0: self-check)
    width: int  # encoded features
    class_counts: tuple[int, ...]  # fitted rows per class (the batch's for a profile); () without a label
    exact_max_rows: int
    reference_graph: bool  # the reference's own k-NN graph must be built (a reference table, not a profile)
    scoring_model: bool = False  # the label model is also fitted once on all rows (to score later batches)

    @property
    def classes(self) -> int:
        return max(len(self.class_counts), 1)


def shape_of(analysis) -> Shape:
    fitted = 0 if analysis.profile is not None else analysis.fitted.n
    labels = analysis.fitted.y if analysis.profile is None else analysis.batch.y
    counts = () if labels is None else tuple(int(c) for c in np.bincount(labels, minlength=analysis.n_classes))
    reference_rows = 0 if analysis.reference is None else analysis.reference.n
    refits = analysis.reference is not None and analysis.profile is None
    return Shape(analysis.batch.n, fitted, reference_rows, int(analysis.batch.X.shape[1]), counts,
                 analysis.options.exact_max_rows, refits, refits or analysis.fits_profile)


def knn_seconds(queries: int, indexed: int, width: int, exact_max_rows: int) -> float:
    if indexed <= exact_max_rows:
        return EXACT * queries * indexed * width
    return HNSW * (queries + indexed) * width * math.log2(max(indexed, 2))


def neighbour_seconds(shape: Shape) -> float:
    """The graphs a run builds: the batch's own, and with a reference the
    batch against it and (unless a profile stored it) the reference's own."""
    seconds = knn_seconds(shape.batch_rows, shape.batch_rows, shape.width, shape.exact_max_rows)
    if shape.reference_rows:
        seconds += knn_seconds(shape.batch_rows, shape.reference_rows, shape.width, shape.exact_max_rows)
        if shape.reference_graph:
            seconds += knn_seconds(shape.reference_rows, shape.reference_rows, shape.width, shape.exact_max_rows)
    return seconds


def label_model_seconds(shape: Shape, params: dict[str, Any]) -> float:
    """The out-of-fold label model (plus the one that scores later batches,
    when there is one); 0 with method knn or a profile (fitted already)."""
    n = shape.fitted_rows
    if params.get("method") == "knn" or n == 0:
        return 0.0
    folds = fold_count(params["n_folds"], n, params["max_train_rows"])
    learnable = sum(1 for c in shape.class_counts if c >= max(min(params["n_folds"], n), 2))
    if learnable < 2:
        return 0.0
    fits = folds + (1 if shape.scoring_model else 0)
    rows = min(n * (1 - 1 / folds), params["max_train_rows"])
    width = min(shape.width, MAX_MODEL_FEATURES)
    if params.get("model") == "logistic":
        return LOGISTIC_CELL * fits * rows * width * learnable
    trees = fits * MODEL_ROUNDS * (1 if learnable == 2 else learnable)
    return trees * (TREE + TREE_WIDTH * width + TREE_CELL * rows * width)


def signal_seconds(name: str, shape: Shape, params: dict[str, Any]) -> float:
    """A signal's own work; rows capped by its `max_fit_rows` / `max_train_rows`
    (it fits on a sample of that many rows; scoring the rest is cheap and not
    counted)."""
    c0, c1, c2, c3, c4 = SIGNAL_COST.get(name, DEFAULT_COST)
    rows = shape.fitted_rows + (shape.batch_rows if shape.reference_rows else 0)
    caps = [params[key] for key in ROW_CAPS if params.get(key) is not None]
    if caps and name != "label_consistency":  # its model's rows are in label_model_seconds
        rows = min(rows, max(caps))
    cells = rows * shape.width
    fixed = c0 + c1 * shape.classes if shape.fitted_rows else 0.0  # a profile skips the fits and their set-up
    return fixed + c2 * cells + c3 * cells * shape.classes + c4 * cells * shape.width


def estimate(shape: Shape, signals: Iterable[Any]) -> dict[str, float]:
    """Seconds by step ("neighbours" and each signal's name) for `signals`
    (objects with `.name` and `.params`), per the model above."""
    parts = {"neighbours": neighbour_seconds(shape)}
    for signal in signals:
        seconds = signal_seconds(signal.name, shape, signal.params)
        if signal.name == "label_consistency":
            seconds += label_model_seconds(shape, signal.params)
        parts[signal.name] = parts.get(signal.name, 0.0) + seconds
    return parts


def _hint(step: str) -> str:
    """What lowers a step's work, for the refusal message."""
    family = next((f for f in FAMILIES if f.signal_name == step), None)
    if family is None:
        return "select fewer --features or split the batch"
    caps = [key for key in ("max_train_rows", "max_fit_rows", "n_folds") if key in family.signal]
    lower = f", lower its {' or '.join(caps)}" if caps else ""
    knn = " or set method: knn" if "method" in family.signal else ""
    return f"disable expectations.{family.section}{lower}{knn}, select fewer --features, or split the batch"


def ensure_time(parts: dict[str, float], elapsed: float, max_seconds: float | None) -> None:
    """InputError (exit 2, one line) when the time spent plus the estimate
    exceeds the budget; nothing when there is no budget."""
    if max_seconds is None:
        return
    total = elapsed + sum(parts.values())
    if total <= max_seconds:
        return
    worst = max(parts, key=parts.__getitem__)
    raise InputError(f"this run is estimated at about {total:.0f} s ({worst} {parts[worst]:.0f} s), over "
                     f"limits.max_seconds={max_seconds:g}; lower the work ({_hint(worst)}) or raise "
                     "limits.max_seconds")


class Deadline:
    """The wall-clock budget of one run, checked between steps."""

    def __init__(self, max_seconds: float | None, start: float | None = None):
        self.max_seconds = max_seconds
        self.start = time.perf_counter() if start is None else start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self, step: str) -> None:
        if self.max_seconds is not None and self.elapsed > self.max_seconds:
            raise InputError(f"limits.max_seconds={self.max_seconds:g} exceeded after {self.elapsed:.0f} s "
                             f"(at {step}); nothing was written: lower the work or raise limits.max_seconds")
