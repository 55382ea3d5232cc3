"""Influence expectation: the share of rows the model leans on too much."""

from __future__ import annotations

from typing import ClassVar

from poison_expectations.core.gates import clopper_pearson_upper
from poison_expectations.core.params import INFLUENCE
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.gx.expectations.base import (GATE_PARAMS, GATE_SENTENCE, PoisonBatchExpectation,
                                                      shared_success_keys)
from poison_expectations.gx.expectations.fields import family_fields
from poison_expectations.gx.metrics.influence import InfluenceMetric
from poison_expectations.gx.expectations.rate_gate import rate_result


LIMITS = ("max_rate", "max_excess_over_reference", "alpha")


class ExpectHighInfluenceRateToBeAtMost(PoisonBatchExpectation, family_fields(INFLUENCE, *LIMITS)):
    """The share of rows whose out-of-fold self-influence (Koh & Liang 2017)
    or negative KNN-Shapley value (Jia et al. 2019) is over its per-class cut
    is at most `max_rate`; against a reference (cuts at the reference's
    `reference_quantile`), not significantly (alpha) and materially
    (max_excess_over_reference) above the reference's own share."""

    metric_class: ClassVar[type] = InfluenceMetric
    metric_dependencies = (InfluenceMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = LIMITS
    success_keys = shared_success_keys(*INFLUENCE.signal_keys, *LIMITS)
    renderer_template = ("Share of rows with outsized influence on a logistic model of $label_column "
                         "(self-influence) or a negative KNN-Shapley value, per class beyond $z_limit robust z "
                         "(or the reference's $reference_quantile quantile), must be at most $max_rate in a "
                         "self-check." + GATE_SENTENCE)
    renderer_params = ("label_column", "z_limit", "reference_quantile", "max_rate", *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        details = {"model": result.summary.get("model"), "knn_shapley": result.summary.get("knn_shapley")}
        return rate_result(self, result, runtime_configuration, details)


# -- config family -------------------------------------------------------------

def _build(section: dict, shared: dict) -> list:
    params = {k: v for k, v in section.items() if k != "enabled"}
    return [ExpectHighInfluenceRateToBeAtMost(**shared, **params)]


def calibrate_rate(section: dict, results: dict, signal: str) -> dict:
    """max_rate from a trusted run: the 99.9% Clopper-Pearson upper bound of
    its flagged share, so a batch like the trusted data passes."""
    result = results.get(signal)
    if result is None or result.n_rows == 0:
        return {}
    return {"max_rate": round(clopper_pearson_upper(result.flagged_count, result.n_rows, 0.999), 6)}


register_family(ExpectationFamily(
    declaration=INFLUENCE,
    build=_build,
    calibrate=lambda section, results: calibrate_rate(section, results, "influence"),
))
