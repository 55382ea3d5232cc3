"""The batch families of the Spark engine: those whose test needs the whole
batch, run after the per-row pass on the persisted scored table.

* From aggregates (`plan_batch`): near duplicates (`near_duplicates.py`,
  `before_cut`: their row p-values enter poison_p before the
  Benjamini-Hochberg cut) and sources (`sources.py`, `after_cut`: they read
  the other signals' p-values and flag groups of rows).
* Learned on the batch (`run_batch_families`): spectral signatures and
  feature clustering (structure_run.py), trigger patterns (triggers.py).
  Each adds its columns to the scored table and returns its gate.
* The groups of clean-label collisions (collisions.py), whose per-row part
  (and gate) came with the per-row pass: they flag rows and add the groups
  to the collision gate (`merged_gates`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from poison_expectations.core.params import NEAR_DUPLICATES
from poison_expectations.engines.spark import collisions
from poison_expectations.engines.spark.params import family_params
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
    if collisions.SECTION in dict(plan.signals):  # its per-row part ran in the scoring pass
        t0 = time.perf_counter()
        report, out.scored = collisions.run(out.scored, plan, columns, rows)
        out.gates[collisions.NAME] = report  # merged into the collision signal's gate (merged_gates)
        out.flag_columns.append(collisions.FLAG)
        out.timings["collisions"] = time.perf_counter() - t0
    return out


def merged_gates(*parts: dict[str, dict]) -> dict[str, dict]:
    """The run's gates: a later part's entry for a gate already there (the
    collision groups beside the collision signal's Higher Criticism) adds to it."""
    gates: dict[str, dict] = {}
    for part in parts:
        for name, gate in part.items():
            gates[name] = {**gates.get(name, {}), **gate}
    if collisions.NAME in gates:
        gates[collisions.NAME]["line"] = collisions.gate_line(gates[collisions.NAME])
    return gates


def _enabled(config: dict, section: str) -> bool:
    return bool(config["expectations"].get(section, {}).get("enabled", True))


def plan_batch(config: dict, roles) -> tuple[list[str], list[str]]:
    """(batch families to run, enabled ones skipped with why)."""
    run, skipped = [], []
    trusted = bool(config["data"].get("profile") or config["data"].get("reference"))
    if _enabled(config, "near_duplicates"):
        if trusted:
            run.append("near_duplicates")
        else:
            skipped.append("near_duplicates (the Spark engine compares the batch with a trusted side: give "
                           "--profile or --reference)")
    if _enabled(config, "sources") and roles.source_column:
        run.append("sources")
    return run, skipped


def fit_extra(config: dict, sections: list[str]) -> list:
    """Signals the trusted side must also be fitted for (a reference table)."""
    from poison_expectations.core.signals.near_duplicates import NearDuplicates

    return [NearDuplicates(**family_params(config, NEAR_DUPLICATES))] if "near_duplicates" in sections else []


def before_cut(spark, sdf, scored, plan, config: dict, rows: int, sections: list[str], skipped: list[str], *,
               n_gates: int) -> tuple[Any, dict[str, dict], list[str]]:
    """(scored frame, gates, signal names added): near duplicates' row
    p-values join poison_p; the old frame is unpersisted when replaced."""
    from poison_expectations.core.signals.near_duplicates import NearDuplicates
    from poison_expectations.engines.spark import near_duplicates

    if "near_duplicates" not in sections:
        return scored, {}, []
    if NearDuplicates(**family_params(config, NEAR_DUPLICATES)).cache_key() not in plan.profile().states:
        skipped.append("near_duplicates (the profile was fitted without it, or with other parameters)")
        return scored, {}, []
    alpha = config["verdicts"]["alpha"] / n_gates  # as the pandas checkpoint: alpha / F
    rescored, gate = near_duplicates.run(spark, sdf, scored, plan, config, rows, names=plan.signal_names,
                                         alpha=alpha)
    rescored.count()
    scored.unpersist()
    return rescored, {near_duplicates.NAME: gate}, [near_duplicates.NAME]


def after_cut(scored, plan, config: dict, sections: list[str], names: list[str], n_gates: int
              ) -> tuple[dict[str, dict], list[tuple[Any, Any]]]:
    """(gates, [(row condition, reason column)]) of the group-level families."""
    from poison_expectations.engines.spark import sources

    if "sources" not in sections:
        return {}, []
    gate, condition, reason = sources.run(scored, plan.roles, config, names,
                                          gate_alpha=config["verdicts"]["alpha"] / max(1, n_gates))
    return {"sources": gate}, ([] if condition is None else [(condition, reason)])
