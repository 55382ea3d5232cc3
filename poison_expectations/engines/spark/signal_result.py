"""One signal's `SignalResult` for a Spark DataFrame: what the GX metrics'
SparkDFExecutionEngine implementations return (gx/metrics/spark.py).

The rows are scored by `mapInPandas` as in the engine; the driver then
collects three per-row columns (id, score, the signal's own flag) and the
reasons of the flagged rows, NOT the table: the rate expectations count
flags and list flagged ids, so they need them. The summary's `reference`
(the trusted rows' own flagged share) is read from a probe of the first
rows, as it depends on the fitted state only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.tables import Options, Roles
from poison_expectations.engines.spark.engine import PROBE_ROWS, score, trusted_bytes
from poison_expectations.engines.spark.scoring import PER_ROW_SIGNALS, ScoringPlan, make_signal


def section_of(signal: Signal) -> str:
    for section, (name, _, _) in PER_ROW_SIGNALS.items():
        if name == signal.name:
            return section
    raise InputError(f"signal '{signal.name}' does not run on Spark (per-row signals only: "
                     f"{', '.join(n for n, _, _ in PER_ROW_SIGNALS.values())})")


def spark_signal_result(sdf, signal: Signal, roles: Roles, options: Options, *, profile: str | None,
                        reference: str | None, max_rows: int = 5_000_000) -> SignalResult:
    """Score `sdf` with one signal against a profile or a reference table."""
    from pyspark.sql import functions as F

    if not (profile or reference):
        raise InputError("the Spark implementation needs a trusted side: set `profile` (poison-check fit) "
                         "or `reference`")
    section = section_of(signal)
    config: dict[str, Any] = {"data": {"profile": profile, "reference": reference},
                              "limits": {"max_rows": max_rows, "max_memory_mb": None}}
    signals = [(section, dict(signal.params))]
    profile_bytes, _ = trusted_bytes(sdf.sparkSession, sdf, config, roles, options, signals)
    if not roles.id_column:
        raise InputError("the Spark implementation needs an id column (id_column) to name flagged rows")
    plan = ScoringPlan(profile_bytes, roles, options, signals, seed=options.random_state)
    summary = _probe_summary(sdf, plan, section)
    name = signal.name
    scored = score(sdf, plan)
    flag = F.col(f"{name}_flag")
    rows = scored.select(roles.id_column, f"{name}_score", flag.alias("flag"),
                         F.when(flag, F.col(f"{name}_reason")).otherwise(F.lit("")).alias("reason")).collect()
    ids = np.asarray([r[0] for r in rows])
    result = SignalResult(name, np.asarray([r[1] for r in rows], dtype=float),
                          np.asarray([bool(r[2]) for r in rows]), np.asarray([r[3] for r in rows], dtype=object),
                          summary)
    result.ids = ids
    return result


def _probe_summary(sdf, plan: ScoringPlan, section: str) -> dict:
    """The summary keys that depend on the fitted state only, from the first rows."""
    from poison_expectations.core.analysis import build_analysis

    head = sdf.limit(PROBE_ROWS).toPandas()
    if len(head) == 0:
        raise InputError("batch: the table has no rows")
    analysis = build_analysis(head, plan.roles, plan.options, profile=plan.profile())
    result = analysis.result(make_signal(section, plan.signals[0][1]))
    return {"mode": result.summary.get("mode", "reference"), "reference": result.summary.get("reference"),
            "engine": "spark"}
