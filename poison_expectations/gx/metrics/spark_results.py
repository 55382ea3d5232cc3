"""The Spark engine's outcome read as the SignalResults the poison expectations
judge (gx/metrics/spark.py runs the engine once per batch and calls this).

A result carries only the rows its signal flags (id, score, p-value, reason:
one collect of the flagged rows from the persisted scored table) and the
batch's row count (`SparkSignalResult.n_rows`): no array of every row reaches
the driver. The gate is the engine's, handed to the expectation as the
signal's `batch_test` (its p-value and lower bound), so the expectation's
own rule decides (`core.verdicts.gate.family_verdict`: fail when p <=
gate_alpha and the lower share > min_effect); the engine computed it at that
same level (the run's alpha / F is the expectations' gate_alpha). Trigger
patterns and sources have no p-value gate in pandas either: their
expectations count confirmed patterns / offending sources from the summary.

What a result lacks against the pandas one (docs/spark.md): no row arrays
for unflagged rows; near duplicates without clusters; spectral signatures
and feature clustering without the per-class report; trigger patterns
without the rejected candidates; sources list the rows of sources the
flagged-rate test names (not those a policy names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.engines.spark import collisions, decide

FLAG = "__poison_flag_{}"  # the collect's per-signal flag column
OWN_TEST_KEYS = ("alpha", "min_effect", "failed", "lower_share", "n_batch", "bound_from_row_pvalues",
                 "estimated_share", "line")  # recomputed by the expectation at its own level


@dataclass
class SparkSignalResult(SignalResult):
    """A SignalResult of the flagged rows only; `n_rows` is the batch's row count."""

    total_rows: int = 0

    @property
    def n_rows(self) -> int:
        return self.total_rows


def batch_test(gate: dict, rows: int) -> dict[str, Any]:
    """The engine's p-value gate as a signal's own batch test (`SignalResult.batch_test`)."""
    if "p_value" not in gate:  # no p-value reached the gate's range: nothing departs
        return {"method": "higher criticism + closed-testing bound (no small p-value)", "p_value": 1.0,
                "lower_bound": 0, "engine": "spark"}
    lower = gate.get("lower_bound")
    if lower is None:
        lower = int(round((gate.get("lower_share") or 0.0) * rows))
    test = {k: v for k, v in gate.items() if k not in OWN_TEST_KEYS}
    return {"method": "higher criticism + closed-testing bound", **test, "lower_bound": int(lower),
            "engine_alpha": gate.get("alpha"), "engine": "spark"}


def results_from(outcome, wanted: dict[str, Signal], q: float) -> dict[str, SignalResult | Exception]:
    """{signal name: its result, or the one-line error of a family the run skipped}
    for the `wanted` signals (by name) of one engine outcome."""
    from pyspark.sql import functions as F

    out: dict[str, SignalResult | Exception] = {}
    scored, rows = outcome.scored, outcome.rows
    present = {name: signal for name, signal in wanted.items() if name in outcome.gates}
    for name, signal in wanted.items():
        if name not in present:
            out[name] = skipped_error(outcome, signal)
    cuts = bh_cuts(outcome, [name for name in present if name not in GROUP_FLAGGED], q)
    conditions = {name: flag_condition(outcome, name, cuts.get(name, 0.0), F) for name in present}
    columns = [F.col(f"`{outcome.plan.id_name}`").alias("__id")]
    for name, condition in conditions.items():
        columns += [condition.alias(FLAG.format(name)), *row_columns(outcome, name, F)]
    any_flag = F.lit(False)
    for condition in conditions.values():
        any_flag = any_flag | condition
    if not present:
        return out
    flagged = scored.where(any_flag).select(*columns).toPandas()  # the flagged rows only
    for name, signal in present.items():
        mine = flagged[flagged[FLAG.format(name)].astype(bool)]
        try:
            out[name] = READERS.get(name, gated_result)(outcome, signal, mine, rows, q)
        except InputError as exc:  # this signal's expectation fails with it; the others are read
            out[name] = exc
    return out


def skipped_error(outcome, signal: Signal) -> InputError:
    section = signal.declaration.section if signal.declaration else signal.name
    why = next((s for s in outcome.skipped if s.startswith(section)), f"{section} (not run)")
    return InputError(f"{signal.name}: not run on Spark: {why}")


GROUP_FLAGGED = ("trigger", "sources", "collision")  # rows flagged by a group finding, not by BH


def flag_condition(outcome, name: str, cut: float, F):
    """The rows a signal flags: BH over its p-values (`cut`: `bh_cuts`, as the
    pandas signal's flags against a trusted side), a trigger's carriers, an
    offending source's rows, a collision group's rows."""
    if name == "trigger":
        return F.col("trigger_flagged")
    if name == "collision":  # its group rows, as the pandas signal's own flags
        return F.col(collisions.FLAG)
    if name == "sources":
        condition = F.lit(False)
        for group, _ in outcome.group_flags:
            condition = condition | group
        return condition
    return F.col(f"{name}_p") <= F.lit(cut)


def bh_cuts(outcome, names: list[str], q: float) -> dict[str, float]:
    """Each signal's Benjamini-Hochberg cut at q: one pass collects every
    signal's p-values <= q (not a pass per expectation)."""
    from pyspark.sql import functions as F

    if not names:
        return {}
    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("s"), F.col(f"{name}_p").alias("p"))
                                for i, name in enumerate(names)]))
    small = (outcome.scored.select(pairs.alias("x")).select("x.s", "x.p").where(F.col("p") <= F.lit(q))
             .toPandas())
    signal, p = small["s"].to_numpy(dtype=np.int64), small["p"].to_numpy(dtype=float)
    return {name: decide.bh_cut(p[signal == i], outcome.rows, q) for i, name in enumerate(names)}


def row_columns(outcome, name: str, F) -> list:
    """The flagged rows' columns a result carries (prefixed by the signal's name)."""
    if name == "sources":
        reason = F.lit("")
        for group, text in outcome.group_flags:
            reason = F.when(group, text).otherwise(reason)
        source = F.col(f"`{outcome.plan.roles.source_column}`").cast("string")
        return [F.coalesce(source, F.lit("None")).alias("sources_source"), reason.alias("sources_reason")]
    if name == "collision":  # the group's unlike share and reason (the pandas collision_score)
        return [F.col(collisions.SCORE).alias("collision_score"), F.col("collision_p"),
                F.col(collisions.REASON).alias("collision_reason")]
    columns = [F.col(f"{name}_score")] + ([] if name == "trigger" else [F.col(f"{name}_p")])
    reason = f"{name}_reason"
    return columns + [(F.col(reason) if reason in outcome.scored.columns else F.lit("")).alias(reason)]


def _result(signal: Signal, frame, rows: int, summary: dict, *, p_column: bool = True) -> SparkSignalResult:
    name = signal.name
    reasons = frame[f"{name}_reason"].fillna("").to_numpy(dtype=object)
    pvalues = frame[f"{name}_p"].to_numpy(dtype=float) if p_column else None
    if pvalues is not None:  # a row flagged by its p-value alone says so (core.verdicts.evidence.flag_by_fdr)
        reasons = np.asarray([r or f"{name}: p = {p:.2g}" for r, p in zip(reasons, pvalues, strict=True)],
                             dtype=object)
    result = SparkSignalResult(name, frame[f"{name}_score"].to_numpy(dtype=float) if f"{name}_score" in frame
                               else np.ones(len(frame)), np.ones(len(frame), dtype=bool), reasons, summary,
                               total_rows=rows)
    result.ids = frame["__id"].to_numpy()
    return result


def common_summary(outcome, name: str) -> dict[str, Any]:
    return {"mode": outcome.mode, "engine": "spark", "spark_gate": outcome.gates[name]}


def gated_result(outcome, signal: Signal, frame, rows: int, q: float) -> SignalResult:
    """A family gated by its row p-values: per-row families, spectral signatures,
    feature clustering, near duplicates."""
    name = signal.name
    summary = {**common_summary(outcome, name), "fdr": {"q": q, "flagged": len(frame),
                                                        "method": "benjamini-hochberg"},
               **EXTRA_SUMMARY.get(name, lambda s, g: {})(signal, outcome.gates[name])}
    result = _result(signal, frame, rows, summary)
    result.batch_test = batch_test(outcome.gates[name], rows)
    return result


def near_duplicate_summary(signal: Signal, gate: dict) -> dict[str, Any]:
    """The keys the near-duplicate expectations read; clusters are not computed on Spark (None)."""
    configured = signal.params.get("radius") is not None
    rule = {"method": "configured" if configured else "reference radius scaled to the pooled size (Spark engine)"}
    return {"radius": gate.get("radius"), "radius_rule": rule, "clusters": None, "rows_in_clusters": None,
            "largest_cluster": None, "size_model": None, "suspicious_clusters": None, "suspicious_rows": None,
            "cluster_summaries": [], "reference": None, "density_test": gate}


def structure_summary(signal: Signal, gate: dict) -> dict[str, Any]:
    """Spectral signatures / feature clustering: no per-class report on Spark (the split gate decides)."""
    return {"per_class": [], "suspicious_classes": [], "representation": signal.params.get("representation")}


EXTRA_SUMMARY = {"near_duplicate": near_duplicate_summary, "spectral": structure_summary,
                 "feature_clustering": structure_summary}


def trigger_result(outcome, signal: Signal, frame, rows: int, q: float) -> SignalResult:
    """Confirmed patterns in the pandas summary's shape ('rows': the batch rows
    carrying one); the expectation counts those at its test level."""
    gate = outcome.gates["trigger"]
    patterns = [{**{k: p[k] for k in ("text", "label", "support", "confidence", "lift", "q_value",
                                      "unlike_share", "looks_like")},
                 "rows": p["batch_support"], "flagged_rows": p["flagged_rows"], "searched_rows": p["searched_rows"],
                 "pattern": None, "ids": None} for p in gate["found"]]
    summary = {**common_summary(outcome, "trigger"), "patterns": patterns,
               "candidates_tested": gate.get("candidates_tested"), "candidates_significant": None,
               "rejected": [], "searched_rows": gate.get("searched_rows")}
    return _result(signal, frame, rows, summary, p_column=False)


def sources_result(outcome, signal: Signal, frame, rows: int, q: float) -> SignalResult:
    """The per-source tests of the gate; every source of the batch is listed
    (one groupBy of the source column) so the policy expectations see them all."""
    from pyspark.sql import functions as F

    gate = outcome.gates["sources"]
    column = F.coalesce(F.col(f"`{outcome.plan.roles.source_column}`").cast("string"), F.lit("None"))
    counts = {r["s"]: int(r["count"]) for r in outcome.scored.groupBy(column.alias("s")).count().collect()}
    tested = {row["source"]: row for row in gate["sources"]}
    listed = list(tested.values()) + [
        {"source": s, "rows": n, "share": n / rows if rows else 0.0, "verdict": "not tested on Spark",
         "signals": {}, "flagged_any": None} for s, n in sorted(counts.items()) if s not in tested]
    missing = [s for s in gate["offending_sources"] if s not in tested]
    if missing:
        raise InputError(f"sources: offending sources beyond the engine's report: {', '.join(missing[:5])}")
    summary = {**common_summary(outcome, "sources"), "sources": listed, "n_sources": len(counts),
               "n_judged": gate["n_judged"], "signals": gate["signals"], "not_on_spark": gate["not_on_spark"],
               "suspicious_sources": gate["suspicious_sources"],
               "unjudged_sources": [r["source"] for r in gate["sources"] if r["verdict"] == "unjudged"]}
    frame = frame.rename(columns={"sources_source": "source"})
    result = _result(signal, frame, rows, summary, p_column=False)
    result.columns = {"source": frame["source"].to_numpy(dtype=object)}
    return result


def collision_result(outcome, signal: Signal, frame, rows: int, q: float) -> SignalResult:
    """The collision groups (summary["groups"], their rows flagged) beside the
    Higher Criticism gate over the rows' p-values, which decides as in pandas."""
    gate = outcome.gates["collision"]
    summary = {**common_summary(outcome, "collision"), "groups": gate.get("collision_groups", []),
               "radius": gate.get("radius"), "candidate_groups": gate.get("candidate_groups", 0)}
    result = _result(signal, frame, rows, summary)
    result.batch_test = batch_test(gate, rows)
    return result


READERS = {"trigger": trigger_result, "sources": sources_result, "collision": collision_result}
