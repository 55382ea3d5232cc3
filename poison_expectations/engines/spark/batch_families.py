"""The families that need the whole batch (not one row at a time): run after
the per-row scoring, from Spark aggregates. `before_cut` families add row
p-values that enter `poison_p` before the Benjamini-Hochberg cut (near
duplicates); `after_cut` families read the scored rows and flag groups of
rows (sources)."""

from __future__ import annotations

from typing import Any

from poison_expectations.core.params import NEAR_DUPLICATES

from poison_expectations.engines.spark.params import BATCH_SECTIONS, family_params

__all__ = ["BATCH_SECTIONS", "plan_batch", "fit_extra", "before_cut", "after_cut"]


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
