"""One signal's `SignalResult` for a Spark DataFrame: what the GX metrics'
SparkDFExecutionEngine implementations return (gx/metrics/spark.py).

The rows are scored by `mapInPandas` as in the engine; the driver then
collects five per-row columns (id, score, p-value, group, reason), NOT the
table: the expectations' gates run Higher Criticism over the row p-values
and list the flagged ids, so they need them. The summary's `reference`
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
from poison_expectations.engines.spark.scoring import (PER_ROW_SIGNALS, ScoringPlan, class_conditional,
                                                       class_reference_sizes, make_signal)


def section_of(signal: Signal) -> str:
    for section, (name, _, _) in PER_ROW_SIGNALS.items():
        if name == signal.name:
            return section
    raise InputError(f"signal '{signal.name}' does not run on Spark (per-row signals only: "
                     f"{', '.join(n for n, _, _ in PER_ROW_SIGNALS.values())})")


def spark_signal_result(sdf, signal: Signal, roles: Roles, options: Options, *, profile: str | None,
                        reference: str | None, max_rows: int = 5_000_000) -> SignalResult:
    """Score `sdf` with one signal against a profile or a reference table:
    scores, conformal p-values with their reference groups, and flags by
    Benjamini-Hochberg at `options.fdr_q` over the whole batch (as
    core.verdicts.evidence does in one process)."""
    from poison_expectations.core.verdicts.evidence import flag_by_fdr

    if not (profile or reference):
        raise InputError("the Spark implementation needs a trusted side: set `profile` (poison-check fit) "
                         "or `reference`")
    if not roles.id_column:
        raise InputError("the Spark implementation needs an id column (id_column) to name flagged rows")
    section = section_of(signal)
    config: dict[str, Any] = {"data": {"profile": profile, "reference": reference},
                              "limits": {"max_rows": max_rows, "max_memory_mb": None}}
    signals = [(section, dict(signal.params))]
    profile_bytes, _ = trusted_bytes(sdf.sparkSession, sdf, config, roles, options, signals)
    plan = ScoringPlan(profile_bytes, roles, options, signals, seed=options.random_state)
    summary = _probe_summary(sdf, plan, section)
    name = signal.name
    rows = score(sdf, plan).select(roles.id_column, f"{name}_score", f"{name}_p", f"{name}_group",
                                   f"{name}_reason").toPandas()
    result = SignalResult(name, rows[f"{name}_score"].to_numpy(dtype=float), np.zeros(len(rows), dtype=bool),
                          rows[f"{name}_reason"].to_numpy(dtype=object), summary)
    result.ids = rows[roles.id_column].to_numpy()
    result.pvalues = rows[f"{name}_p"].to_numpy(dtype=float)
    result.pvalue_groups = _groups(rows[f"{name}_group"].to_numpy(dtype=np.int64), plan)
    flag_by_fdr(result, options.fdr_q)
    return result


def _groups(keys: np.ndarray, plan: ScoringPlan):
    """(groups, group_of_row) in core.verdicts' form, from the rows' group keys."""
    profile = plan.profile()
    signal = make_signal(*plan.signals[0])
    if class_conditional(signal, plan.roles.label_column is not None and profile.table.y is not None):
        ref_by_key = class_reference_sizes(np.asarray(profile.table.y))
    else:
        ref_by_key = {0: len(profile.states[signal.cache_key()]["reference_scores"])}
    present = sorted(set(keys.tolist()))
    groups = tuple((int(ref_by_key.get(k, 0)), int((keys == k).sum())) for k in present)
    return groups, np.searchsorted(np.asarray(present), keys).astype(np.int64)


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
