"""Per-source tests on Spark: the pandas signal's statistics (core/signals/
sources.py, `count_table`) from one `groupBy(source, label)` of the rows
each signal finds suspicious (p-value <= SUSPICIOUS_P, as the pandas signal
counts them against a trusted side). The driver holds sources x classes
counts only; rows of a suspicious source are flagged by a column condition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poison_expectations.core.params import SOURCES
from poison_expectations.core.params.sources import ALL
from poison_expectations.core.signals.sources import SUSPICIOUS_P, _result, count_table

SECTION = "sources"


def selected(params: dict, names: list[str]) -> tuple[list[str], list[str]]:
    """(signals aggregated, selected names that did not run on Spark): "*" or
    null as in the pandas engine's runner (every signal of the run)."""
    wanted = params.get("signals")
    skip = set(params.get("exclude_signals") or ())
    if wanted is None:  # the Python API's default: label consistency (when it ran)
        chosen = [n for n in names if n == "label_consistency"]
    elif ALL in wanted:
        chosen = list(names)
    else:
        chosen = [n for n in dict.fromkeys(wanted) if n in names]
    missing = [n for n in (wanted or ()) if n != ALL and n not in names and n not in skip]
    return [n for n in chosen if n not in skip], missing


def counts(scored, source: str, label: str | None, signals: list[str]):
    """Rows, and rows suspicious for each signal and for any, per (source, label)."""
    from pyspark.sql import functions as F

    hits = [(F.col(f"{n}_p") <= F.lit(SUSPICIOUS_P)) for n in signals]
    any_hit = F.lit(False)
    for hit in hits:
        any_hit = any_hit | hit
    keys = [F.col(source).cast("string").alias("source")]
    if label is not None:
        keys.append(F.col(label).cast("string").alias("label"))
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(any_hit.cast("long")).alias("any")]
    aggs += [F.sum(hit.cast("long")).alias(f"k{j}") for j, hit in enumerate(hits)]
    frame = scored.groupBy(*keys).agg(*aggs).toPandas()
    frame["source"] = frame["source"].fillna("None")
    if label is not None:
        frame["label"] = frame["label"].fillna("None")
    return frame


def table_from_counts(frame, signals: list[str], params: dict) -> dict[str, Any]:
    """The core's count_table on the grouped counts (strata: the labels)."""
    names = np.asarray(sorted(frame["source"].unique()), dtype=object)
    s = np.searchsorted(names, frame["source"].to_numpy(dtype=object))
    labelled = "label" in frame
    classes = np.asarray(sorted(frame["label"].unique()), dtype=object) if labelled else np.asarray(["all"])
    c = np.searchsorted(classes, frame["label"].to_numpy(dtype=object)) if labelled else np.zeros(len(frame), int)

    def matrix(values) -> np.ndarray:
        out = np.zeros((len(names), len(classes)), dtype=np.int64)
        np.add.at(out, (s, c), np.asarray(values, dtype=np.int64))
        return out

    n_sc = matrix(frame["rows"])
    k_sc = {name: matrix(frame[f"k{j}"].fillna(0)) for j, name in enumerate(signals)}
    any_count = matrix(frame["any"].fillna(0)).sum(axis=1)
    return count_table(names, n_sc, k_sc, any_count, n_sc if labelled else None, classes if labelled else None,
                       None, params["min_rows"], params["alpha"], params["min_excess"])


def run(scored, roles, config: dict, names: list[str], *, gate_alpha: float) -> tuple[dict, Any, Any]:
    """(the family's gate, the condition flagging rows of offending sources or
    None, their reason column): offending = suspicious with a significant test
    at q <= min(alpha, gate_alpha), the expectation's test level against a
    trusted side (the checkpoint's alpha / F)."""
    from pyspark.sql import functions as F

    from poison_expectations.engines.spark.params import family_params

    params = SOURCES.signal_params(family_params(config, SOURCES), "sources")
    level = min(params["alpha"], gate_alpha)
    signals, missing = selected(params, names)
    frame = counts(scored, roles.source_column, roles.label_column, signals)
    t = table_from_counts(frame, signals, params)
    t["codes"] = np.arange(len(t["names"]))  # one pseudo-row per source: the summary, never row arrays
    summary = _result("sources", t, params).summary
    offending = {}
    for row in summary["sources"]:
        hits = [n for n, v in row["signals"].items() if v["significant"] and v["q_value"] <= level]
        if row["verdict"] == "suspicious" and hits:
            offending[row["source"]] = _reason(t, row["source"], hits)
    gate = {"method": "one-sided Fisher per source and signal (stratified by label), Benjamini-Hochberg",
            "failed": bool(offending), "level": level, "signals": signals, "not_on_spark": missing,
            "offending_sources": sorted(offending), "suspicious_sources": summary["suspicious_sources"],
            "n_sources": summary["n_sources"],
            "n_judged": summary["n_judged"], "console_lines": summary["console_lines"],
            "sources": summary["sources"][:50]}
    gate["line"] = (f"{len(offending)} of {summary['n_judged']} judged sources flagged above the rest "
                    f"(BH at {level:g}){': ' + ', '.join(sorted(offending)) if offending else ''}")
    if not offending:
        return gate, None, None
    column = F.col(roles.source_column).cast("string")
    reason = F.lit("")
    for source, text in offending.items():
        reason = F.when(column == F.lit(source), F.lit(text)).otherwise(reason)
    return gate, column.isin(list(offending)), reason


def _reason(t: dict, source: str, hits: list[str]) -> str:
    s = int(np.flatnonzero(t["names"] == source)[0])
    parts = [f"{n} {t['rate'][s, j]:.1%} vs {t['expected_rate'][s, j]:.1%} expected (q={t['q'][s, j]:.2g})"
             for j, n in enumerate(t["signals"]) if n in hits]
    return f"source {source!r} ({int(t['rows'][s])} rows) flagged: " + ", ".join(parts)
