"""The batch families of the Spark engine: those whose scorer or test is
learned on the batch itself, run after the per-row pass on the persisted
scored table (spectral signatures and feature clustering: structure_run.py;
trigger patterns: triggers.py). Each adds its columns to the scored table
and returns its gate; run.py calls `run_batch_families` only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from poison_expectations.engines.spark.scoring import ScoringPlan

STRUCTURE_SECTIONS = ("spectral_signatures", "feature_clustering")


@dataclass
class BatchOutcome:
    gates: dict[str, dict] = field(default_factory=dict)
    scored: Any = None  # the scored table with the families' columns (a projection of `cached`)
    cached: Any = None  # the persisted table `scored` reads: the last mapInPandas output
    names: list[str] = field(default_factory=list)  # signals with <name>_score and <name>_p columns
    flag_columns: list[str] = field(default_factory=list)  # bool columns whose rows are flagged besides BH
    timings: dict[str, float] = field(default_factory=dict)


def run_batch_families(scored, plan: ScoringPlan, config: dict, batch: list[tuple[str, dict]], columns: list[str],
                       rows: int, n_families: int, prior: list[str] | None = None) -> BatchOutcome:
    """Run the planned batch families in turn. Only a pass that computes in
    Python (mapInPandas) is persisted, and it replaces (unpersists) the cached
    table once materialised; column expressions (the trigger flags, the
    spectral normalisation) stay projections of it. `prior`: the signals
    whose p-values poison_p already combines (default: the per-row ones)."""
    from poison_expectations.engines.spark.structure_run import run_structure
    from poison_expectations.engines.spark.triggers import FLAG, run_triggers

    out = BatchOutcome(scored=scored, cached=scored)
    structure = [(s, p) for s, p in batch if s in STRUCTURE_SECTIONS]
    if structure:
        t0 = time.perf_counter()
        gates, new, split, out.names = run_structure(scored, plan, config, structure, columns, n_families,
                                                     out.timings, prior=prior)
        out.cached.unpersist()
        out.scored, out.cached = new, split
        out.gates.update(gates)
        out.timings["structure"] = time.perf_counter() - t0
    trigger = dict(batch).get("trigger_patterns")
    if trigger is not None:
        t0 = time.perf_counter()
        gate, out.scored = run_triggers(out.scored, plan, config, trigger, columns, rows, n_families)
        out.gates["trigger"] = gate
        out.flag_columns.append(FLAG)
        out.timings["triggers"] = time.perf_counter() - t0
    return out
