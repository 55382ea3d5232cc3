"""One Spark validation: `run_spark` scores, gathers small aggregates,
decides; `flagged_frames` and `write_dataset` give the executors' outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.engines.spark import batch_families, decide
from poison_expectations.engines.spark.engine import (MAX_SOURCES, SAMPLE_ROWS, SparkOutcome, check_columns,
                                                      partition_offsets, plan_signals, probe, read_data,
                                                      roles_options, score, trusted_bytes)
from poison_expectations.engines.spark.scoring import (ROW_INDEX, ScoringPlan, class_conditional,
                                                       class_reference_sizes, make_signal)


def run_spark(spark, data, config: dict, *, sample_rows: int = SAMPLE_ROWS) -> SparkOutcome:
    """Validate DATA (a path Spark reads) with the config's per-row families, at
    the config's `verdicts` levels (q, alpha split over the signals, min_effect)."""
    from pyspark import StorageLevel

    timings: dict[str, float] = {}
    start = time.perf_counter()
    sdf = read_data(spark, data)
    roles, options = roles_options(config)
    check_columns(sdf.columns, roles)
    signals, skipped = plan_signals(config, labelled=roles.label_column is not None)
    sections, more = batch_families.plan_batch(config, roles)
    skipped += more
    profile_bytes, mode = trusted_bytes(spark, sdf, config, roles, options, signals, sample_rows=sample_rows,
                                        seed=options.random_state, extra=batch_families.fit_extra(config, sections))
    timings["trusted_side"] = time.perf_counter() - start
    offsets = None if roles.id_column else partition_offsets(sdf)
    fdr = config["verdicts"]["q"]
    plan = ScoringPlan(profile_bytes, roles, options, signals, seed=options.random_state, offsets=offsets,
                       combine=config["verdicts"]["combine"])
    probe(sdf, plan)
    scored = score(sdf, plan).persist(StorageLevel.MEMORY_AND_DISK)
    t0 = time.perf_counter()
    try:
        rows = scored.count()  # scores every partition once (persisted for the aggregates and outputs)
    except Exception as exc:  # noqa: BLE001 - a task's InputError (e.g. an unseen label) stays one line, exit 2
        raise executor_error(exc) from None
    timings["score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored, gates, extra = batch_families.before_cut(spark, sdf, scored, plan, config, rows, sections, skipped)
    timings["batch_families"] = time.perf_counter() - t0
    gates = {**signal_gates(scored, plan, config, rows, n_gates=len(plan.signals) + len(gates)), **gates}
    small = _column(scored.where(scored["poison_p"] <= decide.collect_cut(fdr)).select("poison_p"))
    cut = decide.bh_cut(small, rows, fdr)
    more_gates, group_flags = batch_families.after_cut(scored, plan, config, sections,
                                                       plan.signal_names + extra, len(gates))
    gates.update(more_gates)
    flagged = int((small <= cut).sum())
    if group_flags:
        flagged = scored.where(_flagged(cut, group_flags)).count()
    sources = source_counts(scored, roles.source_column, cut, group_flags)
    timings["decide"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    success = not any(gate.get("failed") for gate in gates.values())
    return SparkOutcome(success, rows, flagged, cut, gates, sources, skipped, mode, plan, scored,
                        list(sdf.columns), timings, extra, group_flags)


def _flagged(cut: float, group_flags):
    """The row condition of `flagged`: BH on poison_p, or a group-level flag."""
    from pyspark.sql import functions as F

    condition = F.col("poison_p") <= F.lit(cut)
    for extra, _ in group_flags:
        condition = condition | extra
    return condition


def executor_error(exc: Exception) -> Exception:
    """A task's InputError as an InputError on the driver; any other error as it is."""
    marker = "poison_expectations.core.errors.InputError: "
    text = str(exc)
    if marker in text:
        return InputError(text.split(marker, 1)[1].strip().splitlines()[0])
    return exc


def _column(sdf) -> np.ndarray:
    """One small numeric column on the driver (through Arrow: 8 bytes a value, no Row objects)."""
    return sdf.toPandas().iloc[:, 0].to_numpy(dtype=float)


def signal_gates(scored, plan: ScoringPlan, config: dict, rows: int, n_gates: int | None = None
                 ) -> dict[str, dict]:
    """Each signal's batch gate from its p-values <= ALPHA0 and its group counts."""
    profile = plan.profile()
    gates = {}
    for (section, params), name in zip(plan.signals, plan.signal_names, strict=True):
        p_col, g_col = f"{name}_p", f"{name}_group"
        small = scored.where(scored[p_col] <= decide.ALPHA0).select(p_col, g_col).toPandas()  # via Arrow
        counts = {int(r[g_col]): int(r["count"]) for r in scored.groupBy(g_col).count().collect()}
        signal = make_signal(section, params)
        state = profile.states[signal.cache_key()]
        if class_conditional(signal, plan.roles.label_column is not None and profile.table.y is not None):
            ref_by_key = class_reference_sizes(np.asarray(profile.table.y))
        else:
            ref_by_key = {0: len(state["reference_scores"])}
        alpha = config["verdicts"]["alpha"] / (n_gates or len(plan.signals))  # as the pandas checkpoint: alpha / F
        gates[name] = decide.signal_gate(small[p_col].to_numpy(dtype=float), small[g_col].to_numpy(dtype=np.int64),
                                         counts, ref_by_key, alpha=alpha, min_effect=config["verdicts"]["min_effect"],
                                         seed=plan.seed)
    return gates


def source_counts(scored, source_column: str | None, cut: float, group_flags=()) -> list[dict]:
    """Rows and flagged rows per source (a groupBy), most flagged first."""
    if source_column is None:
        return []
    from pyspark.sql import functions as F

    flagged = _flagged(cut, group_flags)
    grouped = (scored.groupBy(source_column)
               .agg(F.count(F.lit(1)).alias("rows"), F.sum(flagged.cast("long")).alias("flagged"))
               .orderBy(F.desc("flagged"), F.desc("rows")).limit(MAX_SOURCES).collect())
    return [{"source": None if r[source_column] is None else str(r[source_column]), "rows": int(r["rows"]),
             "flagged": int(r["flagged"] or 0)} for r in grouped]


def flagged_frames(outcome: SparkOutcome) -> dict[str, Any]:
    """The findings, accepted and quarantined rows as Spark DataFrames."""
    from pyspark.sql import functions as F

    plan, scored = outcome.plan, outcome.scored
    names = plan.signal_names + outcome.extra_signals
    flagged = _flagged(outcome.cut, outcome.group_flags)
    by_signal = [F.when(F.col(f"{name}_p") <= F.lit(max(outcome.cut, 0.0)),
                        F.format_string(f"{name}: p=%.3g", F.col(f"{name}_p"))) for name in names]
    by_group = [F.when(condition, reason) for condition, reason in outcome.group_flags]
    reasons = F.when(flagged, F.concat_ws("; ", *by_signal, *by_group)).otherwise(F.lit(""))
    reasons = F.when(flagged & (reasons == ""), F.lit("combined evidence of several signals")).otherwise(reasons)
    id_name = plan.id_name
    score_columns = [c for name in names for c in (f"{name}_score", f"{name}_p")]
    findings = scored.select(F.col(id_name), "poison_score", flagged.alias("flagged"), *score_columns,
                             "poison_p", reasons.alias("reasons"))
    original = [F.col(f"`{c}`") for c in outcome.columns]
    accepted = scored.where(~flagged).select(*original)
    quarantine = scored.where(flagged).select(*original, "poison_score", reasons.alias("reasons"))
    return {"findings": findings, "accepted": accepted, "quarantine": quarantine}


def write_dataset(frame, folder: str | Path) -> None:
    """A parquet dataset written by the executors into `folder` (replaced)."""
    frame.write.mode("overwrite").parquet(str(folder))


__all__ = ["run_spark", "flagged_frames", "write_dataset", "ROW_INDEX"]
