"""Source expectations: per-source flagged rates, ledger reputation, allow/deny lists.

All three read one metric (`poison.sources`), so the per-source statistics
are computed once per batch. The reputation expectation also reads the
ledger (history before this run); the family's `after_run` hook records
the run in it. See docs/sources.md.
"""

from __future__ import annotations

from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Any, ClassVar, List, Optional

import numpy as np

from poison_expectations.core.params import SOURCES
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.gx.expectations.base import PoisonBatchExpectation, shared_success_keys
from poison_expectations.gx.expectations.fields import family_fields
from poison_expectations.gx.metrics.sources import SourceStatisticsMetric
from poison_expectations.gx.paths import project_ledger
from poison_expectations.stores import ledger as ledger_mod

SOURCE_KEYS = SOURCES.signal_keys
REPUTATION_KEYS = ("ledger", "min_reputation", "prior_bad", "prior_good", "credible_level", "min_history_rows",
                   "new_source_policy", "new_source_max_share")
LIST_KEYS = ("allowlist", "denylist")


class SourceExpectationBase(PoisonBatchExpectation, family_fields(SOURCES)):
    """Fields (the signal's) and plumbing shared by the source expectations (not registered)."""

    metric_class: ClassVar[type] = SourceStatisticsMetric
    metric_dependencies = (SourceStatisticsMetric.metric_name,)

    def source_rows(self, result) -> dict[str, dict]:
        return {s["source"]: s for s in result.summary["sources"]}

    def finish(self, result, offending: dict[str, dict], observed: dict[str, Any], runtime_configuration,
               details: dict) -> dict:
        """A GX result naming the offending sources; unexpected rows = their rows."""
        sources = self.source_rows(result)
        flags = (np.isin(result.columns["source"], list(offending)) if offending
                 else np.zeros(result.n_rows, dtype=bool))
        details = {"offending_sources": [{"source": s, "rows": sources[s]["rows"], **info}
                                         for s, info in offending.items()],
                   "n_sources": result.summary["n_sources"], **details}
        return self.build_result(success=not offending, observed_value=observed, flags=flags, result=result,
                                 runtime_configuration=runtime_configuration, details=details)


class ExpectSourceFlaggedRatesToNotExceedRest(SourceExpectationBase):
    """No source's share of flagged rows (per signal) is significantly above
    the rest of the batch: one-sided Fisher exact tests, Benjamini-Hochberg
    across sources and signals at `alpha`, and an absolute excess of at least
    `min_excess`. Sources with fewer than `min_rows` rows are not judged."""

    limit_keys: ClassVar[tuple[str, ...]] = ("alpha", "min_excess", "min_rows")
    success_keys = shared_success_keys(*SOURCE_KEYS)
    renderer_template = ("No source in $source_column may have a share of flagged rows significantly above the "
                         "rest of the batch (one-sided Fisher test, Benjamini-Hochberg FDR $alpha) by at least "
                         "$min_excess; sources with fewer than $min_rows rows are not judged.")
    renderer_params = ("source_column", "alpha", "min_excess", "min_rows")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        offending, observed = {}, {}
        level = self.test_level(self.alpha)  # tests are BH-selected at alpha; the checkpoint's share may be lower
        for row in result.summary["sources"]:
            if row["verdict"] != "suspicious":
                continue
            hits = {name: {k: v[k] for k in ("flagged", "rate", "rest_rate", "q_value")}
                    for name, v in row["signals"].items() if v["significant"] and v["q_value"] <= level}
            if not hits:
                continue
            offending[row["source"]] = {"share": row["share"], "signals": hits}
            observed[row["source"]] = round(max(v["rate"] for v in hits.values()), 4)
        details = {"signals": result.summary["signals"], "n_judged": result.summary["n_judged"],
                   "unjudged_sources": result.summary["unjudged_sources"]}
        return self.finish(result, offending, observed, runtime_configuration, details)


class ExpectSourceReputationsToBeAtLeast(SourceExpectationBase,
                                         family_fields(SOURCES, *REPUTATION_KEYS, signal=False)):
    """Every source in the batch has a ledger reputation of at least
    `min_reputation`: 1 minus the upper `credible_level` bound of its
    bad-row rate under a Beta(prior_bad, prior_good) prior, from the runs
    recorded before this one. A source with fewer than `min_history_rows`
    rows of history is new and follows `new_source_policy`: allow; cap
    (all new sources together hold at most `new_source_max_share` of the
    batch); or fail."""

    limit_keys: ClassVar[tuple[str, ...]] = ("min_reputation", "min_history_rows", "new_source_policy",
                                             "new_source_max_share")
    success_keys = shared_success_keys(*SOURCE_KEYS, *REPUTATION_KEYS)
    renderer_template = ("Every source in $source_column must have a ledger reputation of at least "
                         "$min_reputation (1 minus the $credible_level upper credible bound of its bad-row rate, "
                         "prior Beta($prior_bad, $prior_good)); sources with fewer than $min_history_rows rows "
                         "of history follow the policy '$new_source_policy' (cap: at most $new_source_max_share "
                         "of the batch).")
    renderer_params = ("source_column", "min_reputation", "credible_level", "prior_bad", "prior_good",
                       "min_history_rows", "new_source_policy", "new_source_max_share")

    def counts_in_alpha(self) -> bool:
        return False  # a policy: it fails by rule, not by chance

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        batch = self.source_rows(result)
        ledger = project_ledger(self.ledger)  # a stored suite's ledger lives with its GX project
        history = read_history(ledger, list(batch))
        total = sum(s["rows"] for s in batch.values())
        offending, observed, reputations, new = {}, {}, {}, []
        for source in batch:
            past = history.get(source)
            past_rows = past.rows if past else 0
            rep = ledger_mod.reputation(past_rows, past.bad_rows if past else 0, self.prior_bad, self.prior_good,
                                        self.credible_level)
            reputations[source] = {"history_rows": past_rows, "history_runs": past.runs if past else 0,
                                   "history_bad_rows": rep.bad_rows, "bad_rate_mean": rep.mean,
                                   "bad_rate_upper": rep.upper, "reputation": rep.reputation}
            if past_rows < self.min_history_rows:
                new.append(source)
            elif rep.reputation < self.min_reputation:
                offending[source] = {"reason": "low_reputation", **reputations[source]}
                observed[source] = round(rep.reputation, 4)
        new_share = sum(batch[s]["rows"] for s in new) / total if total else 0.0
        if new and (self.new_source_policy == "fail" or
                    (self.new_source_policy == "cap" and new_share > self.new_source_max_share)):
            reason = "new_source" if self.new_source_policy == "fail" else "new_sources_over_cap"
            for source in new:
                offending[source] = {"reason": reason, "share": batch[source]["share"], **reputations[source]}
                observed[source] = reason
        details = {"reputations": reputations, "new_sources": new, "new_sources_share": new_share,
                   "ledger": ledger_mod.ledger_url(ledger)}
        return self.finish(result, offending, observed, runtime_configuration, details)


class ExpectSourcesToBeAllowed(SourceExpectationBase, family_fields(SOURCES, *LIST_KEYS, signal=False)):
    """No source of the batch matches the `denylist`, and, when an
    `allowlist` is given, every source matches it (shell-style patterns
    such as `vendor_*`, case-sensitive)."""

    limit_keys: ClassVar[tuple[str, ...]] = LIST_KEYS
    success_keys = shared_success_keys(*SOURCE_KEYS, *LIST_KEYS)
    renderer_template = ("No source in $source_column may match the denylist $denylist; when an allowlist is "
                         "given ($allowlist), every source must match it.")
    renderer_params = ("source_column", "denylist", "allowlist")

    def counts_in_alpha(self) -> bool:
        return False  # a policy: it fails by rule, not by chance

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        offending, observed = {}, {}
        for source, row in self.source_rows(result).items():
            reason = list_verdict(source, self.allowlist, self.denylist)
            if reason:
                offending[source] = {"reason": reason, "share": row["share"]}
                observed[source] = reason
        return self.finish(result, offending, observed, runtime_configuration, {})


def list_verdict(source: str, allowlist: Optional[List[str]], denylist: Optional[List[str]]) -> str | None:
    """'denied', 'not_allowed' or None (denylist first)."""
    if denylist and any(fnmatchcase(source, p) for p in denylist):
        return "denied"
    if allowlist and not any(fnmatchcase(source, p) for p in allowlist):
        return "not_allowed"
    return None


def read_history(ledger: str | None, sources: list[str]) -> dict[str, ledger_mod.SourceHistory]:
    """Ledger totals for `sources`; a SQLite ledger that does not exist yet is empty."""
    if not ledger_mod.ledger_exists(ledger):
        return {}
    with ledger_mod.Ledger(ledger) as store:
        return store.history(sources)


# -- config family -----------------------------------------------------------------

def _build(section: dict, shared: dict) -> list:
    """Nothing without a source column: the default config must run on any table."""
    if not shared.get("source_column"):
        return []
    common = {**shared, **{k: section[k] for k in SOURCE_KEYS}}
    return [
        ExpectSourceFlaggedRatesToNotExceedRest(**common),
        ExpectSourceReputationsToBeAtLeast(**common, **{k: section[k] for k in REPUTATION_KEYS}),
        ExpectSourcesToBeAllowed(**common, **{k: section[k] for k in LIST_KEYS}),
    ]


def _after_run(section: dict, outcome) -> None:
    """Record every source of the run in the ledger (one transaction)."""
    result = outcome.results.get("sources")
    if not section["record"] or result is None:
        return
    verdicts = source_verdicts(outcome)
    records = []
    for row in result.summary["sources"]:
        flagged = {name: v["flagged"] for name, v in row["signals"].items()}
        verdict = ",".join(verdicts.get(row["source"], [])) or ("unjudged" if row["verdict"] == "unjudged" else "ok")
        records.append(ledger_mod.SourceRecord(row["source"], row["rows"], row["flagged_any"], verdict, flagged))
    with ledger_mod.Ledger(section["ledger"]) as store:
        store.record_run(outcome.run_id, records, success=outcome.success, data_path=outcome.data_path,
                         recorded_at=datetime.now(timezone.utc),
                         batch_key=ledger_mod.batch_key(outcome.data, outcome.analysis.roles.source_column))


def source_verdicts(outcome) -> dict[str, list[str]]:
    """source -> the reasons our expectations failed it in this run."""
    names = {ExpectSourceFlaggedRatesToNotExceedRest: "suspicious",
             ExpectSourceReputationsToBeAtLeast: None, ExpectSourcesToBeAllowed: None}
    by_type = {cls.__name__: fixed for cls, fixed in names.items()}
    out: dict[str, list[str]] = {}
    for e in outcome.expectations:
        kind = next((n for n in by_type if _snake(n) == e.expectation), None)
        if kind is None:
            continue
        for item in e.details.get("offending_sources", []):
            out.setdefault(item["source"], []).append(by_type[kind] or item.get("reason", "failed"))
    return out


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


register_family(ExpectationFamily(
    declaration=SOURCES,
    build=_build,
    after_run=_after_run,
))
