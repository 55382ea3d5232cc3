"""Trigger patterns on Spark: the core's search on the driver, the flags and
the counts on the executors.

The search (core/signals/triggers.py: items, single and pair candidates,
Benjamini-Hochberg, the neighbour ranking, the leave-columns-out
reclassification) runs unchanged on the driver against the profile, on the
whole batch when it has at most `SEARCH_ROWS` rows (then its patterns are
the pandas engine's), else on a uniform random sample of that many rows.
Its confirmed patterns are plain conditions on the raw columns (an exact
value, a bin [low, high), a level, "is missing"), so the executors flag
every row of the WHOLE batch that carries a pattern with its label, and one
Spark aggregation counts each pattern's support and hits over the whole
batch (reported beside the sample's). The gate counts the patterns at the
expectation's level min(alpha, checkpoint alpha / F), as the pandas
expectation does, and fails above `max_patterns`.
"""

from __future__ import annotations

from typing import Any

from poison_expectations.engines.spark.scoring import ScoringPlan, make_signal
from poison_expectations.engines.spark.structure import signal_state

SEARCH_ROWS = 200_000  # batch rows the driver searches at most (a uniform sample beyond)
NAME = "trigger"
FLAG, REASON, SCORE = f"{NAME}_flagged", f"{NAME}_reason", f"{NAME}_score"


def search_frame(scored, columns: list[str], rows: int, seed: int):
    """The batch (at most SEARCH_ROWS rows: all of it, else a uniform sample) on the driver."""
    table = scored.select(*[f"`{c}`" for c in columns])
    if rows > SEARCH_ROWS:
        table = table.sample(withReplacement=False, fraction=min(1.0, 1.05 * SEARCH_ROWS / rows),
                             seed=seed).limit(SEARCH_ROWS)
    return table.toPandas()


def item_condition(item: dict, field_type, F):
    """A Spark condition for one item of a pattern (trigger_items.item_json)."""
    from pyspark.sql.types import BooleanType

    col = F.col(f"`{item['column']}`")
    if item["kind"] == "level":
        if item["value"] == "<NA>":
            return col.isNull()
        if isinstance(field_type, BooleanType):
            return col == F.lit(item["value"] == "True")
        return col.cast("string") == F.lit(item["value"])
    missing = col.isNull() | F.isnan(col.cast("double"))
    if item.get("missing"):
        return missing
    if item["kind"] == "value":
        return ~missing & (col.cast("double") == F.lit(float(item["value"])))
    cond = ~missing
    if item.get("low") is not None:
        cond = cond & (col.cast("double") >= F.lit(float(item["low"])))
    if item.get("high") is not None:
        cond = cond & (col.cast("double") < F.lit(float(item["high"])))
    return cond


def pattern_condition(pattern: dict, types: dict, F):
    cond = F.lit(True)
    for item in pattern["pattern"]:
        cond = cond & item_condition(item, types[item["column"]], F)
    return cond


def run_triggers(scored, plan: ScoringPlan, config: dict, params: dict, columns: list[str], rows: int,
                 n_families: int) -> tuple[dict[str, Any], Any]:
    """(gate, scored with trigger_score / trigger_flagged / trigger_reason)."""
    from pyspark.sql import functions as F

    from poison_expectations.core.analysis import build_analysis

    profile = plan.profile()
    signal = make_signal("trigger_patterns", params)
    state = signal_state(profile, signal)
    frame = search_frame(scored, columns, rows, plan.seed)
    result = signal.score(state, build_analysis(frame, plan.roles, plan.options, profile=profile))
    patterns = result.summary["patterns"]  # the confirmed ones
    types = {f.name: f.dataType for f in scored.schema.fields}
    label = F.col(f"`{plan.roles.label_column}`")
    carries = [pattern_condition(p, types, F) for p in patterns]
    flagged = [c & (label == F.lit(p["label"])) for c, p in zip(carries, patterns, strict=True)]
    counts = whole_batch_counts(scored, carries, flagged, F)
    score, reason, flag = F.lit(0.0), F.lit(""), F.lit(False)
    for p, cond in zip(patterns, flagged, strict=True):  # the first pattern gives the reason, as in the core
        strength = float(p["confidence"] * p["unlike_share"])
        score = F.when(cond, F.greatest(score, F.lit(strength))).otherwise(score)
        reason = F.when(flag, reason).otherwise(F.when(cond, F.lit(
            f"carries trigger pattern {p['text']} -> label {p['label']!r}")).otherwise(reason))
        flag = flag | cond
    out = scored.withColumn(SCORE, score).withColumn(FLAG, flag).withColumn(REASON, reason)
    level = min(signal.params["alpha"], config["verdicts"]["alpha"] / n_families)
    counted = [p for p in patterns if p["q_value"] <= level]
    limit = int(config["expectations"].get("trigger_patterns", {}).get("max_patterns") or 0)
    report = [{k: p[k] for k in ("text", "label", "support", "confidence", "lift", "q_value", "unlike_share",
                                 "looks_like")} | {"searched_rows": p["rows"], **counts[i]}
              for i, p in enumerate(patterns)]
    gate = {"method": f"trigger pattern search on {len(frame)} of {rows} rows, patterns at q <= {level:.3g}",
            "patterns": len(counted), "max_patterns": limit, "failed": len(counted) > limit, "found": report,
            "candidates_tested": result.summary["candidates_tested"], "searched_rows": len(frame),
            }
    return gate, out


def whole_batch_counts(scored, carries, flagged, F) -> list[dict[str, int]]:
    """Per pattern: rows carrying it and rows carrying it with its label, over every row (one aggregation)."""
    if not carries:
        return []
    aggs = []
    for i, (c, f) in enumerate(zip(carries, flagged, strict=True)):
        aggs += [F.sum(c.cast("long")).alias(f"s{i}"), F.sum(f.cast("long")).alias(f"h{i}")]
    row = scored.agg(*aggs).collect()[0]
    return [{"batch_support": int(row[f"s{i}"] or 0), "flagged_rows": int(row[f"h{i}"] or 0)}
            for i in range(len(carries))]
