"""One Spark validation: `run_spark` scores, gathers small aggregates,
decides; `flagged_frames` and `write_dataset` give the executors' outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.engines.spark import batch, decide
from poison_expectations.engines.spark.engine import (MAX_SOURCES, SAMPLE_ROWS, SparkOutcome, check_columns,
                                                      partition_offsets, plan_signals, probe, read_data,
                                                      roles_options, score, trusted_bytes)
from poison_expectations.engines.spark.scoring import (ROW_INDEX, ScoringPlan, class_conditional,
                                                       class_reference_sizes, make_signal)
from poison_expectations.engines.spark.storage import persisted
from poison_expectations.engines.spark.structure import HALF


def run_spark(spark, data, config: dict, *, sample_rows: int = SAMPLE_ROWS) -> SparkOutcome:
    """Validate DATA (a path Spark reads, or a Spark DataFrame) with the config's families: the per-row
    ones, then near duplicates, the structure families and triggers, and sources
    last (they read the others' p-values), at the config's `verdicts` levels
    (q, alpha split over every gate of the run, min_effect)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    sdf = read_data(spark, data)
    roles, options = roles_options(config)
    check_columns(sdf.columns, roles)
    signals, skipped, learned, sections = plan_families(config, roles)
    profile_bytes, mode = trusted_bytes(spark, sdf, config, roles, options, signals + learned, sample_rows=sample_rows,
                                        seed=options.random_state, extra=batch.fit_extra(config, sections))
    n_families = len(signals) + len(learned) + len(sections)  # alpha / F over them (gate_count)
    timings["trusted_side"] = time.perf_counter() - start
    offsets = None if roles.id_column else partition_offsets(sdf)
    fdr = config["verdicts"]["q"]
    plan = ScoringPlan(profile_bytes, roles, options, signals, seed=options.random_state, offsets=offsets,
                       combine=config["verdicts"]["combine"])
    probe(sdf, plan)
    scored = persisted(with_halves(score(sdf, plan), plan.seed, bool(learned)))
    t0 = time.perf_counter()
    try:
        rows = scored.count()  # scores every partition once (persisted for the aggregates and outputs)
    except Exception as exc:  # noqa: BLE001 - a task's InputError (e.g. an unseen label) stays one line, exit 2
        raise executor_error(exc) from None
    timings["score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored, dup_gates, dup_names = batch.before_cut(spark, sdf, scored, plan, config, rows, sections,
                                                             skipped, n_gates=n_families)
    timings["near_duplicates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gates, small = signal_gates(scored, plan, config, fdr, n_families=n_families)
    more = batch.run_batch_families(scored, plan, config, learned, list(sdf.columns), rows, n_families,
                              prior=plan.signal_names + dup_names)
    scored, gates = more.scored, batch.merged_gates(gates, dup_gates, more.gates)
    timings.update(more.timings)
    if more.names:  # poison_p was recombined with the batch families' p-values
        small = _column(scored.where(scored["poison_p"] <= decide.collect_cut(fdr)).select("poison_p"))
    cut = decide.bh_cut(small, rows, fdr)
    names = plan.signal_names + dup_names + more.names
    source_gates, group_flags = batch.after_cut(scored, plan, config, sections, names, n_families)
    gates.update(source_gates)
    flags = (more.flag_columns, group_flags)
    flagged = (int((small <= cut).sum()) if not (more.flag_columns or group_flags)
               else scored.where(flag_condition(cut, *flags)).count())
    sources = source_counts(scored, roles.source_column, cut, *flags)
    timings["decide"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    success = not any(gate.get("failed") for gate in gates.values())
    return SparkOutcome(success, rows, flagged, cut, gates, sources, skipped, mode, plan, scored,
                        list(sdf.columns), timings, dup_names + more.names, more.flag_columns, group_flags,
                        more.cached)


def plan_families(config: dict, roles) -> tuple[list, list[str], list, list[str]]:
    """(per-row signals, enabled families skipped with why, families learned on
    the batch, families run from aggregates: near duplicates, sources)."""
    signals, skipped, learned = plan_signals(config, labelled=roles.label_column is not None)
    sections, more_skipped = batch.plan_batch(config, roles)
    return signals, skipped + more_skipped, learned, sections


def gate_count(config: dict) -> int:
    """The gates a run splits alpha over (F): every family it plans."""
    signals, _, learned, sections = plan_families(config, roles_options(config)[0])
    return len(signals) + len(learned) + len(sections)


def executor_error(exc: Exception) -> Exception:
    """A task's InputError as an InputError on the driver; any other error as it is."""
    marker = "poison_expectations.core.errors.InputError: "
    text = str(exc)
    if marker in text:
        return InputError(text.split(marker, 1)[1].strip().splitlines()[0])
    return exc


def with_halves(scored, seed: int, needed: bool):
    """The split-conformal half of each row (structure.py): a fair coin drawn
    once and persisted with the scored table, independent of the data."""
    if not needed:
        return scored
    from pyspark.sql import functions as F

    return scored.withColumn(HALF, (F.rand(seed) < 0.5).cast("long"))


def _column(sdf) -> np.ndarray:
    """One small numeric column on the driver (through Arrow: 8 bytes a value, no Row objects)."""
    return sdf.toPandas().iloc[:, 0].to_numpy(dtype=float)


def signal_gates(scored, plan: ScoringPlan, config: dict, fdr: float,
                 n_families: int | None = None) -> tuple[dict[str, dict], np.ndarray]:
    """Each signal's batch gate from its group counts and its p-values <= its
    alpha0, and the combined p-values <= q (for the row flags): two passes
    over the scored rows, a groupBy of every signal's group key and one
    Arrow collect of the rows with any small p-value. Alpha is split over
    `n_families` gates (default: the per-row signals)."""
    from pyspark.sql import functions as F

    profile = plan.profile()
    names = plan.signal_names
    g_cols = [f"{name}_group" for name in names]
    joint = scored.groupBy(*g_cols).count().toPandas()  # a few rows: the classes' combinations
    counts = {name: {int(k): int(v) for k, v in joint.groupby(g)["count"].sum().items()}
              for name, g in zip(names, g_cols, strict=True)}
    refs = {name: _reference_sizes(section, params, profile, plan) for (section, params), name
            in zip(plan.signals, names, strict=True)}
    alpha0 = {name: decide.signal_alpha0(counts[name], refs[name]) for name in names}
    wanted = F.col("poison_p") <= F.lit(decide.collect_cut(fdr))
    for name in names:
        wanted = wanted | (F.col(f"{name}_p") <= F.lit(alpha0[name]))
    small = scored.where(wanted).select("poison_p", *[c for name in names
                                                      for c in (f"{name}_p", f"{name}_group")]).toPandas()
    alpha = config["verdicts"]["alpha"] / (n_families or len(plan.signals))  # as the pandas checkpoint: alpha / F
    gates = {}
    for name in names:
        mine = small[small[f"{name}_p"] <= alpha0[name]]
        gates[name] = decide.signal_gate(mine[f"{name}_p"].to_numpy(dtype=float),
                                         mine[f"{name}_group"].to_numpy(dtype=np.int64), counts[name], refs[name],
                                         alpha=alpha, min_effect=config["verdicts"]["min_effect"], seed=plan.seed)
    combined = small["poison_p"].to_numpy(dtype=float)
    return gates, combined[combined <= decide.collect_cut(fdr)]


def _reference_sizes(section: str, params: dict, profile, plan: ScoringPlan) -> dict[int, int]:
    """Trusted rows per group key of one signal (its classes, or one marginal group)."""
    signal = make_signal(section, params)
    if class_conditional(signal, plan.roles.label_column is not None and profile.table.y is not None):
        return class_reference_sizes(np.asarray(profile.table.y))
    return {0: len(profile.states[signal.cache_key()]["reference_scores"])}


def flag_condition(cut: float, flag_columns=(), group_flags=()):
    """A row is flagged when BH names it (poison_p <= cut) or a group-level test
    does (a trigger's flag column, a suspicious source's row condition)."""
    from pyspark.sql import functions as F

    flagged = F.col("poison_p") <= F.lit(cut)
    for column in flag_columns:
        flagged = flagged | F.col(column)
    for condition, _ in group_flags:
        flagged = flagged | condition
    return flagged


def source_counts(scored, source_column: str | None, cut: float, flag_columns=(), group_flags=()) -> list[dict]:
    """Rows and flagged rows per source (a groupBy), most flagged first."""
    if source_column is None:
        return []
    from pyspark.sql import functions as F

    grouped = (scored.groupBy(source_column)
               .agg(F.count(F.lit(1)).alias("rows"),
                    F.sum(flag_condition(cut, flag_columns, group_flags).cast("long")).alias("flagged"))
               .orderBy(F.desc("flagged"), F.desc("rows")).limit(MAX_SOURCES).collect())
    return [{"source": None if r[source_column] is None else str(r[source_column]), "rows": int(r["rows"]),
             "flagged": int(r["flagged"] or 0)} for r in grouped]


def flagged_frames(outcome: SparkOutcome) -> dict[str, Any]:
    """The findings, accepted and quarantined rows as Spark DataFrames."""
    from pyspark.sql import functions as F

    plan, scored = outcome.plan, outcome.scored
    names = plan.signal_names + outcome.batch_names
    flagged = flag_condition(outcome.cut, outcome.flag_columns, outcome.group_flags)
    own = [F.when(F.col(c), F.col(c.replace("_flagged", "_reason"))) for c in outcome.flag_columns]
    own += [F.when(condition, reason) for condition, reason in outcome.group_flags]
    reasons = F.when(flagged, F.concat_ws("; ", *own, *[
        F.when(F.col(f"{name}_p") <= F.lit(max(outcome.cut, 0.0)),
               F.format_string(f"{name}: p=%.3g", F.col(f"{name}_p")))
        for name in names])).otherwise(F.lit(""))
    reasons = F.when(flagged & (reasons == ""), F.lit("combined evidence of several signals")).otherwise(reasons)
    id_name = plan.id_name
    score_columns = [c for name in names for c in (f"{name}_score", f"{name}_p")]
    score_columns += [c.replace("_flagged", "_score") for c in outcome.flag_columns]
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
