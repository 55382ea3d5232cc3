"""Influence expectation: the share of rows the model leans on too much."""

from __future__ import annotations

from typing import ClassVar

from poison_expectations.core.config import RATE, Param
from poison_expectations.core.gates import clopper_pearson_upper
from poison_expectations.gx.metrics.influence import INFLUENCE_KEYS, InfluenceMetric
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.gx.expectations.base import PoisonBatchExpectation, shared_success_keys
from poison_expectations.gx.expectations.rate_gate import rate_result


class ExpectHighInfluenceRateToBeAtMost(PoisonBatchExpectation):
    """The share of rows whose out-of-fold self-influence (Koh & Liang 2017)
    or negative KNN-Shapley value (Jia et al. 2019) is over its per-class cut
    is at most `max_rate`; against a reference (cuts at the reference's
    `reference_quantile`), not significantly (alpha) and materially
    (max_excess_over_reference) above the reference's own share."""

    n_folds: int = 5
    l2: float = 1e-3
    max_train_rows: int = 100_000
    exact_max_params: int = 400
    shapley_k: int = 5
    z_limit: float = 3.5
    reference_quantile: float = 0.999
    max_rate: float = 0.05
    max_excess_over_reference: float = 0.002
    alpha: float = 0.001

    metric_class: ClassVar[type] = InfluenceMetric
    metric_dependencies = (InfluenceMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_rate", "max_excess_over_reference", "alpha")
    success_keys = shared_success_keys(*INFLUENCE_KEYS, "max_rate", "max_excess_over_reference", "alpha")
    renderer_template = ("Share of rows with outsized influence on a logistic model of $label_column "
                         "(self-influence) or a negative KNN-Shapley value, per class beyond $z_limit robust z "
                         "(or the reference's $reference_quantile quantile), must be at most $max_rate; against "
                         "a reference, at most $max_excess_over_reference above the reference's share "
                         "(alpha $alpha).")
    renderer_params = ("label_column", "z_limit", "reference_quantile", "max_rate", "max_excess_over_reference",
                       "alpha")

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
    section="influence",
    order=40,
    params={
        "enabled": Param(True, bool, "Run the influence expectation (influence functions and KNN-Shapley)."),
        "n_folds": Param(5, int, "Out-of-fold splits: each row is scored by a model trained without its fold.",
                         low=2, high=20),
        "l2": Param(1e-3, float, "L2 penalty of the logistic model, on the scale of the mean log-loss.",
                    low=1e-8, high=10.0),
        "max_train_rows": Param(100_000, int, "Rows each fold's model (and its Hessian) uses at most (sampled).",
                                low=100),
        "exact_max_params": Param(400, int, "Models with at most this many parameters use the exact Hessian; "
                                  "larger ones conjugate gradients.", low=1),
        "shapley_k": Param(5, int, "K of the K-NN classifier whose Shapley values are computed (at most the "
                           "shared neighbours.k).", low=1, high=200),
        "z_limit": Param(3.5, float, "Self-check cut: robust z (Iglewicz-Hoaglin modified z) within the class.",
                         low=0.5, high=100.0),
        "reference_quantile": Param(0.999, float, "With a reference: cut at this per-class quantile of the "
                                    "reference's own values.", low=0.5, high=0.999999),
        "max_rate": Param(0.05, doc="Self-check: the largest share of rows over the cut (0-1); a tolerance, not a bound: clean tables flagged up to 2.1% in our runs.", **RATE),
        "max_excess_over_reference": Param(
            0.002, doc="With a reference: the largest tolerated excess of the batch's share over the "
                       "reference's (absolute, 0-1); default twice the nominal tail share 1 - 0.999.", **RATE),
        "alpha": Param(0.001, doc="With a reference: significance level of the one-sided binomial test.", **RATE),
    },
    build=_build,
    calibrate=lambda section, results: calibrate_rate(section, results, "influence"),
))
