"""GX metric for the influence signal (influence functions + KNN-Shapley)."""

from __future__ import annotations

from poison_expectations.core.signals.influence import Influence
from poison_expectations.gx.metrics.base import PoisonSignalMetric

INFLUENCE_KEYS = ("n_folds", "l2", "max_train_rows", "exact_max_params", "shapley_k", "z_limit",
                  "reference_quantile")


class InfluenceMetric(PoisonSignalMetric):
    metric_name = "poison.influence"
    signal_class = Influence
    signal_keys = INFLUENCE_KEYS
