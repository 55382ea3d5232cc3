"""Class-conditional outlier expectation: the share of rows far from their class."""

from __future__ import annotations

from typing import ClassVar

from poison_expectations.core.config import RATE, Param
from poison_expectations.gx.metrics.outliers import OUTLIER_KEYS, OutlierMetric
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.core.signals.feature_detectors import DETECTORS
from poison_expectations.gx.expectations.base import PoisonBatchExpectation, shared_success_keys
from poison_expectations.gx.expectations.influence import calibrate_rate
from poison_expectations.gx.expectations.rate_gate import rate_result


class ExpectClassOutlierRateToBeAtMost(PoisonBatchExpectation):
    """The share of rows that are outliers within their own class (sphere or
    slab distance, Steinhardt et al. 2017; per-class ECOD or IForest) is at
    most `max_rate`; against a reference (fitted on it, cuts at its
    `reference_quantile`), not significantly (alpha) and materially
    (max_excess_over_reference) above the reference's own share."""

    detector: str = "ecod"
    z_limit: float = 3.5
    reference_quantile: float = 0.999
    max_rate: float = 0.05
    max_excess_over_reference: float = 0.002
    alpha: float = 0.001

    metric_class: ClassVar[type] = OutlierMetric
    metric_dependencies = (OutlierMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_rate", "max_excess_over_reference", "alpha")
    success_keys = shared_success_keys(*OUTLIER_KEYS, "max_rate", "max_excess_over_reference", "alpha")
    renderer_template = ("Share of rows that are outliers within their class of $label_column (distance to the "
                         "class centroid or toward another class, or $detector feature score), per class beyond "
                         "$z_limit robust z (or the reference's $reference_quantile quantile), must be at most "
                         "$max_rate; against a reference, at most $max_excess_over_reference above the "
                         "reference's share (alpha $alpha).")
    renderer_params = ("label_column", "detector", "z_limit", "reference_quantile", "max_rate",
                       "max_excess_over_reference", "alpha")

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
    section="outliers",
    order=45,
    needs_label=False,
    params={
        "enabled": Param(True, bool, "Run the class-conditional outlier expectation."),
        "detector": Param("ecod", str, "Per-class feature detector: ecod (parameter-free) or iforest.",
                          choices=DETECTORS),
        "z_limit": Param(3.5, float, "Self-check cut: robust z (Iglewicz-Hoaglin modified z) within the class.",
                         low=0.5, high=100.0),
        "reference_quantile": Param(0.999, float, "With a reference: cut at this per-class quantile of the "
                                    "reference's own values.", low=0.5, high=0.999999),
        "max_rate": Param(0.05, doc="Self-check: the largest share of rows over the cut (0-1).", **RATE),
        "max_excess_over_reference": Param(
            0.002, doc="With a reference: the largest tolerated excess of the batch's share over the "
                       "reference's (absolute, 0-1); default twice the nominal tail share 1 - 0.999.", **RATE),
        "alpha": Param(0.001, doc="With a reference: significance level of the one-sided binomial test.", **RATE),
    },
    build=_build,
    calibrate=lambda section, results: calibrate_rate(section, results, "outlier"),
))
