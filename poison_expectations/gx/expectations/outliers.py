"""Class-conditional outlier expectation: the share of rows far from their class."""

from __future__ import annotations

from typing import ClassVar

from poison_expectations.core.params import OUTLIERS
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.gx.expectations.base import (GATE_PARAMS, GATE_SENTENCE, PoisonBatchExpectation,
                                                      shared_success_keys)
from poison_expectations.gx.expectations.fields import family_fields
from poison_expectations.gx.metrics.outliers import OutlierMetric
from poison_expectations.gx.expectations.influence import calibrate_rate
from poison_expectations.gx.expectations.rate_gate import rate_result


LIMITS = ("max_rate", "max_excess_over_reference", "alpha")


class ExpectClassOutlierRateToBeAtMost(PoisonBatchExpectation, family_fields(OUTLIERS, *LIMITS)):
    """The share of rows that are outliers within their own class (sphere or
    slab distance, Steinhardt et al. 2017; per-class ECOD or IForest) is at
    most `max_rate`; against a reference (fitted on it, cuts at its
    `reference_quantile`), not significantly (alpha) and materially
    (max_excess_over_reference) above the reference's own share."""

    metric_class: ClassVar[type] = OutlierMetric
    metric_dependencies = (OutlierMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = LIMITS
    success_keys = shared_success_keys(*OUTLIERS.signal_keys, *LIMITS)
    renderer_template = ("Share of rows that are outliers within their class of $label_column (distance to the "
                         "class centroid or toward another class, or $detector feature score), per class beyond "
                         "$z_limit robust z (or the reference's $reference_quantile quantile), must be at most "
                         "$max_rate in a self-check." + GATE_SENTENCE)
    renderer_params = ("label_column", "detector", "z_limit", "reference_quantile", "max_rate", *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        details = {"detector": self.detector,
                   "classes_without_reference_rows": result.summary.get("classes_without_reference_rows")}
        return rate_result(self, result, runtime_configuration, details)


# -- config family -------------------------------------------------------------

def _build(section: dict, shared: dict) -> list:
    params = {k: v for k, v in section.items() if k != "enabled"}
    return [ExpectClassOutlierRateToBeAtMost(**shared, **params)]


register_family(ExpectationFamily(
    declaration=OUTLIERS,
    build=_build,
    calibrate=lambda section, results: calibrate_rate(section, results, "outlier"),
))
