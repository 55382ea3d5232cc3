"""Shared success rule of the "share of flagged rows" expectations.

Self-check: the batch's flagged share is at most `max_rate`. Against a
reference: the batch's share over the reference-calibrated cuts is not
significantly (one-sided binomial test at `alpha`, against the
Clopper-Pearson upper bound of the reference's own share over the same
cuts) AND materially (`max_excess_over_reference`) above the reference's.
"""

from __future__ import annotations

from typing import Any, Optional

from ..gates import reference_gate
from ..signals.base import SignalResult


def rate_result(expectation, result: SignalResult, runtime_configuration: Optional[dict],
                details: dict[str, Any]) -> dict:
    """The GX result dict of a rate expectation (observed value = flagged share)."""
    details = {"mode": result.summary.get("mode"), "per_class": result.summary.get("per_class"),
               "components": result.summary.get("components"), **details}
    reference = result.summary.get("reference")
    if reference:
        gate = reference_gate(result.flagged_count, result.n_rows, reference["flagged"], reference["rows"],
                              alpha=expectation.alpha, min_excess=expectation.max_excess_over_reference)
        success = gate.passed
        details["reference_gate"] = gate.as_dict()
    else:
        success = result.flagged_rate <= expectation.max_rate
    return expectation.build_result(success=success, observed_value=result.flagged_rate, flags=result.flags,
                                    result=result, runtime_configuration=runtime_configuration,
                                    details=details)
