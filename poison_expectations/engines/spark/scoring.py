"""Scoring rows against a profile, one chunk at a time (pandas in, pandas out).

This is what each Spark task runs inside `mapInPandas`, and what the
agreement tests run in one process on a whole table: no Spark import here.
A `ScoringPlan` is plain, picklable data (the profile's bytes, the roles,
the options, the signals' parameters), captured in the task's closure; each
Python worker loads the profile once and keeps it (`_PROFILES`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

from poison_expectations.core.analysis import build_analysis
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.tables import Options, Roles
from poison_expectations.core.verdicts import class_conditional_pvalues, combine_pvalues, conformal_pvalues
from poison_expectations.core.verdicts.ranking import class_conditional_ranking, ranking_score

# config section -> (signal name, class path): the signals whose `score` reads only the row and the
# trusted side, so scoring a partition alone gives the row the same score as scoring the whole table
PER_ROW_SIGNALS = {
    "label_consistency": ("label_consistency", "poison_expectations.core.signals.label_consistency",
                          "LabelConsistency"),
    "outliers": ("outlier", "poison_expectations.core.signals.outliers", "Outliers"),
    "influence": ("influence", "poison_expectations.core.signals.influence", "Influence"),
}
# config section -> (signal name, class path) of the families whose scorer or test is learned on the
# batch itself (batch.py): fitted into the trusted side, run after the per-row pass
BATCH_SIGNALS = {
    "spectral_signatures": ("spectral", "poison_expectations.core.signals.spectral", "SpectralSignatures"),
    "feature_clustering": ("feature_clustering", "poison_expectations.core.signals.feature_clustering",
                           "FeatureClustering"),
    "trigger_patterns": ("trigger", "poison_expectations.core.signals.triggers", "TriggerPatterns"),
}
# config section -> (signal name, class path) of the families with a per-row part scored here (their
# `batch_scores` and its conformal p-value: what their batch gate tests) and a group part run after the
# per-row pass (collisions.py); not per-row GX metrics (gx/metrics/spark.py): their findings are groups
GROUP_SIGNALS = {
    "clean_label_collision": ("collision", "poison_expectations.core.signals.collision", "CleanLabelCollision"),
}
ROW_SIGNALS = {**PER_ROW_SIGNALS, **GROUP_SIGNALS}  # the signals of the per-row pass
# signals ranked among the trusted rows of their own class (label-conditional conformal p-values)
# besides those whose `calibration` says "class"
CLASS_CONDITIONAL = frozenset({"label_consistency"})
# a class with fewer trusted rows is ranked in one pooled group (core.verdicts.conformal's default)
MIN_CLASS_ROWS = 50
ROW_INDEX = "row_index"

_PROFILES: dict[str, Any] = {}  # digest -> Profile, per Python worker


def class_conditional(signal: Signal, labelled: bool) -> bool:
    """Ranked within the trusted rows of the row's class (else among all of
    them); unlabelled tables are ranked marginally (as core.verdicts.evidence)."""
    return labelled and (signal.name in CLASS_CONDITIONAL or getattr(signal, "calibration", None) == "class")


def make_signal(section: str, params: dict[str, Any]) -> Signal:
    import importlib

    _, module, cls = ROW_SIGNALS.get(section) or BATCH_SIGNALS[section]
    return getattr(importlib.import_module(module), cls)(**params)


@dataclass
class ScoringPlan:
    """Everything a task needs, as plain data (pickled into the closure)."""

    profile_bytes: bytes
    roles: Roles
    options: Options
    signals: list[tuple[str, dict[str, Any]]]  # (config section, signal parameters)
    seed: int = 0
    offsets: dict[int, int] | None = None  # partition -> first row_index, when the table has no id column
    combine: str = "cauchy"  # verdicts.combine: how a row's p-values over the signals are combined
    digest: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256(self.profile_bytes).hexdigest()

    @property
    def id_name(self) -> str:
        return self.roles.id_column or ROW_INDEX

    @property
    def signal_names(self) -> list[str]:
        return [ROW_SIGNALS[section][0] for section, _ in self.signals]

    def output_columns(self) -> list[tuple[str, str]]:
        """(name, Spark SQL type) of the columns scoring adds to the input's."""
        cols = [] if self.roles.id_column else [(ROW_INDEX, "long")]
        for name in self.signal_names:
            cols += [(f"{name}_score", "double"), (f"{name}_p", "double"), (f"{name}_group", "long"),
                     (f"{name}_reason", "string")]
        return cols + [("poison_p", "double"), ("poison_score", "double")]

    def profile(self):
        """The profile, loaded once per process from the captured bytes."""
        if self.digest not in _PROFILES:
            from poison_expectations.stores.profiles import load_profile

            fd, path = tempfile.mkstemp(suffix=".profile")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(self.profile_bytes)
                _PROFILES[self.digest] = load_profile(path)
            finally:
                os.unlink(path)
        return _PROFILES[self.digest]


def score_frame(plan: ScoringPlan, frame: pd.DataFrame, seed: Any) -> pd.DataFrame:
    """`frame` with the scoring columns appended (see `ScoringPlan.output_columns`).
    `seed` seeds the conformal tie-breaks of these rows."""
    profile = plan.profile()
    analysis = build_analysis(frame, plan.roles, plan.options, profile=profile)
    analysis.recall_sample = 0  # 200 exact queries per Arrow chunk cost a third of a 10k-row chunk's time
    rng = np.random.default_rng(seed)
    out = {}
    pvalues, rank_pvalues = [], []
    for section, params in plan.signals:
        signal = make_signal(section, params)
        result = row_part(signal, analysis) if section in GROUP_SIGNALS else analysis.result(signal)
        state = analysis.state_for(signal)
        p, group = signal_pvalues(signal, state, result, analysis, rng)
        # the core's deterministic ranking p-values (core.verdicts.ranking): no tie-break, same in any chunking
        rank_pvalues.append(p if result.rank_pvalues is None else result.rank_pvalues)
        out[f"{signal.name}_score"] = result.scores
        out[f"{signal.name}_p"] = p
        out[f"{signal.name}_group"] = group
        out[f"{signal.name}_reason"] = result.reasons.astype(str)  # the signal's own words, where it has them
        pvalues.append(p)
    combined = combine_pvalues(np.column_stack(pvalues), plan.combine)
    out["poison_p"] = combined
    out["poison_score"] = ranking_score(np.column_stack(rank_pvalues))  # as core.findings: a ranking, not a test
    added = pd.DataFrame(out, index=frame.index)
    return pd.concat([frame, added], axis=1)


def row_part(signal: Signal, analysis) -> SignalResult:
    """A group family's per-row part: its `batch_scores` as the row score and
    the core's deterministic ranking p-values of them (core.verdicts.evidence),
    without its group search (a chunk is not the batch: collisions.py)."""
    state = analysis.state_for(signal)
    scores = np.nan_to_num(np.asarray(signal.batch_scores(state, analysis), dtype=float), nan=0.0)
    n = len(scores)
    result = SignalResult(signal.name, scores, np.zeros(n, dtype=bool), np.full(n, "", dtype=object))
    reference = np.nan_to_num(np.asarray(state["reference_scores"], dtype=float), nan=0.0)
    result.rank_pvalues = class_conditional_ranking(scores, analysis.batch.y, reference, analysis.reference.y,
                                                    min_class_rows=MIN_CLASS_ROWS)
    return result


def signal_pvalues(signal: Signal, state: dict, result, analysis, rng) -> tuple[np.ndarray, np.ndarray]:
    """(p-value, reference group key) per batch row. The key is the class code
    for a class-conditional signal's large classes, -1 for the pooled small
    classes, 0 for a marginal signal: the driver counts rows per key."""
    # ranked here, not taken from `result.pvalues`: core.verdicts.evidence ranks each chunk with
    # one seed per signal (the same draws in every chunk) and numbers the class groups per chunk
    n = analysis.batch.n
    scores = signal.batch_scores(state, analysis, result)
    reference = np.asarray(state["reference_scores"], dtype=float)
    if class_conditional(signal, analysis.batch.y is not None and analysis.reference.y is not None):
        ref_y, y = np.asarray(analysis.reference.y), np.asarray(analysis.batch.y)
        cc = class_conditional_pvalues(scores, y, reference, ref_y, min_class_rows=MIN_CLASS_ROWS, seed=rng)
        return cc.pvalues, class_keys(ref_y, y)
    return conformal_pvalues(scores, reference, seed=rng), np.zeros(n, dtype=np.int64)


def class_keys(ref_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The group each batch row is ranked in: its class when the trusted side
    has MIN_CLASS_ROWS rows of it, else -1 (the pooled group)."""
    counts = np.bincount(ref_y, minlength=int(max(ref_y.max(initial=0), y.max(initial=0))) + 1)
    return np.where(counts[y] >= MIN_CLASS_ROWS, y, -1).astype(np.int64)


def class_reference_sizes(ref_y: np.ndarray) -> dict[int, int]:
    """Trusted rows per group key (the class codes of large classes, and -1)."""
    counts = np.bincount(ref_y)
    sizes = {int(c): int(n) for c, n in enumerate(counts) if n >= MIN_CLASS_ROWS}
    sizes[-1] = int(counts[counts < MIN_CLASS_ROWS].sum())
    return sizes


def score_partitions(plan: ScoringPlan, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body: score each Arrow chunk of one partition; row_index
    (when the table has no id column) counts on from the partition's offset."""
    from pyspark import TaskContext

    partition = TaskContext.get().partitionId()
    position = (plan.offsets or {}).get(partition, 0)
    for number, chunk in enumerate(chunks):
        if len(chunk) == 0:
            continue
        chunk = chunk.reset_index(drop=True)
        scored = score_frame(plan, chunk, [plan.seed, partition, number])
        if not plan.roles.id_column:  # after scoring, so it is never taken for a feature
            scored.insert(chunk.shape[1], ROW_INDEX, np.arange(position, position + len(chunk), dtype=np.int64))
            position += len(chunk)
        yield scored
