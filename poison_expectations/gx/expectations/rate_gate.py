"""Shared success rule of the "share of flagged rows" expectations.

Against a reference or profile: the family's exchangeability gate
(`PoisonBatchExpectation.verdict`: Higher Criticism over the rows' conformal
p-values at `gate_alpha`, and a lower confidence bound of the contaminated
share over `min_effect`). Self-check: the batch's flagged share is at most
`max_rate` when one is set (a tolerance, with no stated false-alarm rate;
null, the default, reports the share without gating on it). The older
reference rule (binomial test of the flagged share against the reference's,
`alpha` and `max_excess_over_reference`) applies only to a result without
row p-values.
"""

from __future__ import annotations

from typing import Any, Optional

from poison_expectations.core.gates import reference_gate
from poison_expectations.core.signals.base import SignalResult


def judge_rate(expectation, flagged: int, rows: int, reference: tuple[int, int] | None,
               max_rate: float) -> tuple[bool, dict | None]:
    """(success, reference-gate details or None) for `flagged` of `rows`;
    `reference` is the reference's (flagged, rows) when there is one."""
    if reference is None:  # a self-check: the tolerance, when one is set (null: report only)
        return max_rate is None or (flagged / rows if rows else 0.0) <= max_rate, None
    gate = reference_gate(flagged, rows, reference[0], reference[1], alpha=expectation.alpha,
                          min_excess=expectation.max_excess_over_reference)
    return gate.passed, gate.as_dict()


def rate_result(expectation, result: SignalResult, runtime_configuration: Optional[dict],
                details: dict[str, Any]) -> dict:
    """The GX result dict of a rate expectation (observed value = flagged share)."""
    summary = result.summary
    details = {**{key: summary[key] for key in ("mode", "per_class", "components") if summary.get(key) is not None},
               **details}
    verdict = expectation.verdict(result)
    if verdict is not None:
        return expectation.verdict_result(result, verdict, runtime_configuration, details)
    reference = summary.get("reference")
    success, gate = judge_rate(expectation, result.flagged_count, result.n_rows,
                               (reference["flagged"], reference["rows"]) if reference else None,
                               expectation.max_rate)
    if gate is not None:
        details["reference_gate"] = gate
    return expectation.build_result(success=success, observed_value=result.flagged_rate, flags=result.flags,
                                    result=result, runtime_configuration=runtime_configuration,
                                    details=details)
