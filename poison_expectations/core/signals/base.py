"""The signal interface. Signals are pure numpy/pandas/sklearn: no GX here.

A signal is constructed with its parameters and works like a scikit-learn
estimator or a pyod detector: `fit` learns a state from the trusted table
(`analysis.fitted`: the reference, or the batch itself in a self-check) and
`score` applies that state to the batch. The state is plain data (numpy
arrays, JSON values, scikit-learn estimators) so it can be stored in a
profile (`stores/profiles.py`) and fitted once for many batches.

Every state holds `reference_scores`: each fitted row's own score computed
out of sample (cross-fitted, a row never scores itself), the baseline that
conformal p-values rank batch rows against. A self-check scores the fitted
rows themselves with `score_fitted`, from those out-of-sample quantities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from poison_expectations.core.analysis import Analysis
    from poison_expectations.core.params import FamilyParams


@dataclass
class SignalResult:
    """Per-row output of one signal, aligned with the batch rows."""

    signal: str
    scores: np.ndarray  # float in [0, 1], higher = more suspicious
    flags: np.ndarray  # bool
    reasons: np.ndarray  # object (str), "" where not flagged
    summary: dict[str, Any] = field(default_factory=dict)  # JSON-able
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extra findings columns
    ids: np.ndarray | None = None  # batch row ids, set by Analysis.result
    # one p-value per batch row under "this row is exchangeable with the trusted rows" (small =
    # suspicious); a signal may set its own, else core/verdicts/evidence.py ranks the batch
    # scores among the state's `reference_scores` (conformal)
    pvalues: np.ndarray | None = None
    # the same evidence for RANKING only (poison_score): deterministic and monotone in the
    # signal's score (core/verdicts/ranking.py); not a valid p-value. None: rank by `pvalues`
    rank_pvalues: np.ndarray | None = None
    # the reference groups the p-values were ranked in: ((n_reference, n_batch) per group, the
    # group index of every batch row); None: one group of every trusted row
    pvalue_groups: tuple[tuple[tuple[int, int], ...], np.ndarray] | None = None
    # rows whose p-values form separately valid blocks (split halves); None: one block
    pvalue_blocks: list[np.ndarray] | None = None
    # a signal's own batch-level test of the same null, used instead of Higher Criticism over
    # `pvalues` when set: {"method": str, "p_value": float, "lower_bound": int (rows
    # contaminated with confidence 1 - alpha, or None), ...JSON-able extras}
    batch_test: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if len(self.flags) != n or len(self.reasons) != n:
            raise ValueError(f"{self.signal}: scores, flags and reasons differ in length")
        self.scores = np.clip(np.nan_to_num(np.asarray(self.scores, dtype=float), nan=0.0), 0.0, 1.0)
        self.flags = np.asarray(self.flags, dtype=bool)
        self.reasons = np.asarray(self.reasons, dtype=object)

    @property
    def n_rows(self) -> int:
        return len(self.scores)

    @property
    def flagged_count(self) -> int:
        return int(self.flags.sum())

    @property
    def flagged_rate(self) -> float:
        return self.flagged_count / self.n_rows if self.n_rows else 0.0


State = dict  # plain data: str keys; numpy arrays, JSON values, sklearn estimators, nested dicts/lists


class Signal(ABC):
    """Base class: subclasses set `name` and implement `fit`, `score` and
    `score_fitted`. `inputs` names the signals whose results `score` reads
    (from `analysis.results()`); "*" means every other signal of the run."""

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    # the family's parameter declaration (core/params): defaults and checks of every parameter
    declaration: ClassVar["FamilyParams | None"] = None
    # how batch scores are ranked among `reference_scores` for conformal p-values: "marginal"
    # (all trusted rows), "class" (the trusted rows of the row's own label) or None (the signal
    # has no per-row reference scores; it sets `pvalues`/`batch_test` itself or gives none)
    calibration: ClassVar[str | None] = "marginal"
    # True: against a reference the signal's own flags and `batch_test` stand (a group-level
    # discovery, e.g. a collision group); False: its flags become BH at q over its row p-values
    own_flags: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        """Every declared parameter: the given value (checked against its
        declaration, InputError otherwise) or the declared default."""
        self.params = self.declaration.signal_params(params, self.name) if self.declaration else params

    def cache_key(self) -> tuple:
        return (self.name, tuple(sorted((k, _freeze(v)) for k, v in self.params.items())))

    @abstractmethod
    def fit(self, analysis: "Analysis") -> State:
        """Learn from `analysis.fitted` (and `analysis.fitted_neighbors`) only."""

    @abstractmethod
    def score(self, state: State, analysis: "Analysis") -> SignalResult:
        """Score the batch rows (`analysis.batch`) against a fitted state; never refits."""

    @abstractmethod
    def score_fitted(self, state: State, analysis: "Analysis") -> SignalResult:
        """Self-check: the fitted rows' result from their out-of-sample quantities."""

    def batch_scores(self, state: State, analysis: "Analysis", result: SignalResult | None = None) -> np.ndarray:
        """The batch rows' scores on the scale of `state["reference_scores"]` (what
        conformal p-values rank); by default the result's scores."""
        if result is None:
            raise ValueError(f"{self.name}: batch_scores needs the batch's result")
        return result.scores

    def batch_pvalues(self, state: State, analysis: "Analysis", result: SignalResult) -> tuple | None:
        """Row p-values computed by the signal itself, as (pvalues, (groups,
        group_of_row), blocks); None: rank `batch_scores` among the state's
        `reference_scores` (core/verdicts/evidence.py)."""
        return None

    def run(self, analysis: "Analysis", state: State | None = None) -> SignalResult:
        """Fit (unless a fitted state is given) and score the batch: against the
        reference when there is one, else the fitted rows themselves (self-check)."""
        if analysis.reference is None:
            return self.score_fitted(self.fit(analysis) if state is None else state, analysis)
        return self.score(self.fit(analysis) if state is None else state, analysis)


def row_draws(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold in 0..k-1 for each row, drawn by hashing the row's encoded values
    with the seed: as good as a random draw, independent of the row's position,
    so a row gets the same fold wherever it is scored (one batch, or one chunk
    of a Spark partition), and copies of a row get the same one."""
    return (row_hashes(X, seed) % np.uint64(k)).astype(np.int64)


def row_hashes(X: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each row's encoded values with the seed (`row_draws`)."""
    rows = np.ascontiguousarray(X, dtype=np.float32)
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    mix = np.random.default_rng([seed, 7]).integers(1, 2 ** 31, size=rows.shape[1], dtype=np.uint64)
    keys = rows.view(np.uint32).astype(np.uint64) * mix  # wraps around: a cheap universal-style hash
    h = np.bitwise_xor.reduce(keys, axis=1) if rows.shape[1] else np.zeros(rows.shape[0], dtype=np.uint64)
    return _finalised(h)


def _finalised(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: every input bit moves every output bit."""
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h


def row_uniforms(X: np.ndarray, columns: int, seed: int) -> np.ndarray:
    """(n, columns) uniforms in [0, 1), drawn by hashing each row once (`row_hashes`)
    and mixing in the column: the same draws for a row in any batch or chunk."""
    h = row_hashes(X, seed)
    steps = np.arange(1, columns + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps, as intended
    out = np.empty((len(h), columns))
    for column, step in enumerate(steps):
        out[:, column] = (_finalised(h + step) >> np.uint64(11)) * 2.0 ** -53
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """A numpy scalar (e.g. a class label) as plain Python, for JSON and messages."""
    return value.item() if isinstance(value, np.generic) else value


def per_class(flags: np.ndarray, y: np.ndarray, classes) -> list[dict]:
    """Rows, flagged rows and their share, for each class present in the batch."""
    out = []
    for code, value in enumerate(classes):
        members = y == code
        n = int(members.sum())
        if n == 0:
            continue
        k = int(flags[members].sum())
        out.append({"class": plain(value), "rows": n, "flagged": k, "rate": k / n})
    return out
