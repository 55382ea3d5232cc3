"""The driver side of spectral signatures and feature clustering on Spark:
learn each half's scorer, score every row by the other half's (pass 3),
gate on the driver. See structure.py for the passes and why they are valid."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from poison_expectations.core.signals.representation import apply_representation
from poison_expectations.core.verdicts import combine_pvalues, conformal_pvalues
from poison_expectations.core.verdicts.gate import family_verdict
from poison_expectations.engines.spark import decide
from poison_expectations.engines.spark.scoring import ScoringPlan, make_signal
from poison_expectations.engines.spark.storage import persisted
from poison_expectations.engines.spark.structure import (HALF, MIN_CLASS_ROWS, apply_scorer, class_samples,
                                                         class_sums, encoded, fit_clustering, padded_result,
                                                         signal_state, spectral_scorer)


@dataclass
class SplitModel:
    """One signal's scorers, plain enough to pickle into the pass-3 closure."""

    name: str
    kind: str  # "spectral" or "clustering"
    representation: dict
    blocks: dict[tuple[int, int], tuple] = field(default_factory=dict)  # (class, half) -> other half's scorer
    reference: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # its trusted scores
    full: dict[int, tuple] = field(default_factory=dict)  # spectral: class -> whole-class (mean, direction)
    ref_rows: dict[int, int] = field(default_factory=dict)  # trusted rows per class


def run_structure(scored, plan: ScoringPlan, config: dict, planned: list[tuple[str, dict]], columns: list[str],
                  n_families: int, timings: dict | None = None, prior: list[str] | None = None):
    """(gates, scored, split, names): the families' gates, the scored table with
    their `<name>_score/_p/_group` columns and the recombined poison_p (a
    projection of `split`, the persisted pass-3 output; the caller unpersists
    the table it gave, and `split` when done), and the signals' names."""
    from pyspark.sql import functions as F

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    models = fit_models(scored, plan, planned, columns)
    timings["structure_fit"] = time.perf_counter() - t0
    names = [m.name for m in models]
    out_schema = _schema(scored, models)
    body = functools.partial(_score_partition, plan, columns, models, plan.signal_names if prior is None else prior)
    split = persisted(scored.mapInPandas(body, out_schema))
    split.count()
    new = split
    for model in (m for m in models if m.kind == "spectral"):
        new = _normalised(new, model.name, F)
    new = new.drop(*[f"{m.name}_class" for m in models if m.kind == "spectral"])  # column expressions only
    timings["structure_score"] = time.perf_counter() - t0 - timings["structure_fit"]
    alpha = config["verdicts"]["alpha"] / n_families
    gates = {m.name: structure_gate(new, m, alpha, config["verdicts"]["min_effect"], plan.seed) for m in models}
    return gates, new, split, names


def fit_models(scored, plan: ScoringPlan, planned, columns) -> list[SplitModel]:
    """Each planned family's scorers from the exact class sums (spectral) or a
    bounded sample per (class, half) (feature clustering), and the trusted rows' scores."""
    profile = plan.profile()
    signals = [make_signal(section, params) for section, params in planned]
    states = [signal_state(profile, s) for s in signals]
    reps = {s.name: st["representation"] for s, st in zip(signals, states, strict=True)}
    spectral = [s.name for s in signals if s.name == "spectral"]
    sums = class_sums(scored, plan, columns, reps, spectral)
    counts = {k: v[0] for k, v in sums.items()}
    clustering = [s for s in signals if s.name != "spectral"]
    samples = {}
    if clustering:
        m = {s.name: int(s.params["max_fit_rows"]) for s in clustering}
        fc_counts = {k: n for k, n in counts.items() if k[0] in m}
        samples = class_samples(scored, plan, columns, {n: reps[n] for n in m}, fc_counts, m, plan.seed)
    y_ref = np.asarray(profile.table.y)
    models = []
    for signal in signals:
        kind = "spectral" if signal.name == "spectral" else "clustering"
        model = SplitModel(signal.name, kind, reps[signal.name])
        R_ref = apply_representation(model.representation, profile.table.X)
        classes = sorted({k[1] for k in counts if k[0] == signal.name})
        for c in classes:
            model.ref_rows[c] = int(np.count_nonzero(y_ref == c))
            n = [counts.get((signal.name, c, h), 0) for h in (0, 1)]
            if kind == "spectral" and sum(n) >= MIN_CLASS_ROWS:
                parts = [sums[(signal.name, c, h)] for h in (0, 1) if n[h]]
                model.full[c] = spectral_scorer(sum(p[0] for p in parts), sum(p[1] for p in parts),
                                                sum(p[2] for p in parts))
            for h in (0, 1):
                if min(n[1 - h], n[h], model.ref_rows[c]) < MIN_CLASS_ROWS:
                    continue  # untested: as split_pvalues, a uniform p-value in its half's own group
                if kind == "spectral":
                    scorer = spectral_scorer(*sums[(signal.name, c, 1 - h)])
                else:
                    scorer = fit_clustering(signal, samples[(signal.name, c, 1 - h)], signal.params["random_state"])
                model.blocks[(c, h)] = scorer
                model.reference[(c, h)] = apply_scorer(kind, scorer, R_ref[y_ref == c])
        models.append(model)
    return models


def _schema(scored, models: list[SplitModel]):
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    fields = list(scored.schema.fields)  # a new list: never mutate scored.schema
    for m in models:
        fields += [StructField(f"{m.name}_score", DoubleType()), StructField(f"{m.name}_p", DoubleType()),
                   StructField(f"{m.name}_group", LongType())]
        if m.kind == "spectral":
            fields.append(StructField(f"{m.name}_class", LongType()))
    return StructType(fields)


def _score_partition(plan: ScoringPlan, columns, models, prior: list[str],
                     chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Pass 3: each row's split score, p-value and group per signal; poison_p
    recombined over every signal's p-value (poison_score keeps the per-row
    families' ranking: their ranking p-values are not kept in the table)."""
    from pyspark import TaskContext

    partition = TaskContext.get().partitionId()
    reps = {m.name: m.representation for m in models}
    for number, chunk in enumerate(chunks):
        if len(chunk) == 0:
            continue
        chunk = chunk.reset_index(drop=True)
        y, rep = encoded(plan, chunk[columns], reps)
        half = chunk[HALF].to_numpy(dtype=np.int64)
        rng = np.random.default_rng([plan.seed, 19, partition, number])
        out = {}
        for m in models:
            out.update(split_columns(m, rep[m.name], y, half, rng))
        pvalues = [chunk[f"{name}_p"].to_numpy(dtype=float) for name in prior]
        pvalues += [out[f"{m.name}_p"] for m in models]
        combined = combine_pvalues(np.column_stack(pvalues), plan.combine)
        chunk["poison_p"] = combined
        yield pd.concat([chunk, pd.DataFrame(out, index=chunk.index)], axis=1)


def split_columns(m: SplitModel, R: np.ndarray, y: np.ndarray, half: np.ndarray, rng) -> dict[str, np.ndarray]:
    """One signal's columns for a chunk (see `run_structure`)."""
    n = len(y)
    p = rng.random(n)  # the no-evidence value of untested rows, as split_pvalues
    group = np.where(half == 0, -1, -2).astype(np.int64)
    score = np.zeros(n)
    for (c, h), scorer in m.blocks.items():
        rows = np.flatnonzero((y == c) & (half == h))
        if not len(rows):
            continue
        s = apply_scorer(m.kind, scorer, R[rows])
        p[rows] = conformal_pvalues(s, m.reference[(c, h)], seed=rng)
        group[rows] = 2 * c + h
        if m.kind == "clustering":
            score[rows] = (s + 1.0) / 2.0  # the pull, from [-1, 1] to [0, 1]
    out = {f"{m.name}_score": score, f"{m.name}_p": p, f"{m.name}_group": group}
    if m.kind == "spectral":
        for c, (mean, v) in m.full.items():
            rows = y == c
            score[rows] = ((R[rows].astype(np.float64) - mean) @ v) ** 2
        out[f"{m.name}_class"] = y.astype(np.int64)
    return out


def _normalised(scored, name: str, F):
    """Spectral scores as tau over the largest tau of the row's batch class (spectral.py's scale)."""
    tops = {int(r["c"]): float(r["top"]) for r in scored.groupBy(F.col(f"{name}_class").alias("c"))
            .agg(F.max(f"{name}_score").alias("top")).collect()}
    if not tops:
        return scored
    top = F.create_map(*[x for c, t in tops.items() for x in (F.lit(c), F.lit(max(t, 1e-12)))])
    return scored.withColumn(f"{name}_score", F.col(f"{name}_score") / top[F.col(f"{name}_class")])


def structure_gate(scored, m: SplitModel, alpha: float, min_effect: float, seed: int) -> dict:
    """family_verdict over the halves (Bonferroni) from the p-values <= ALPHA0 and the group counts."""
    p_col, g_col = f"{m.name}_p", f"{m.name}_group"
    small = scored.where(scored[p_col] <= decide.ALPHA0).select(p_col, g_col).toPandas()
    counts = {int(r[g_col]): int(r["count"]) for r in scored.groupBy(g_col).count().collect()}
    ref_sizes = {key: m.ref_rows.get(key // 2, 0) for key in counts if key >= 0}
    result = padded_result(small, counts, ref_sizes, p_col, g_col)
    if not result.n_rows:
        return {"rows": 0, "failed": False}
    verdict = family_verdict(result, alpha=alpha, min_effect=min_effect, n_sims=decide.N_SIMS, seed=seed) or {}
    verdict.pop("estimated_share", None)  # Storey's estimate needs the p-values above 0.1 too
    return {**verdict, "rows": int(result.n_rows), "groups": len(counts),
            "small_pvalues": int(len(small)), "tested_blocks": len(m.blocks)}


__all__ = ["run_structure", "fit_models", "SplitModel"]
