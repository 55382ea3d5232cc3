"""GX metric for the influence signal (influence functions + KNN-Shapley)."""

from __future__ import annotations

from ..signals.influence import Influence
from .base import SHARED_KEYS, PoisonSignalMetric

INFLUENCE_KEYS = ("n_folds", "l2", "max_train_rows", "exact_max_params", "shapley_k", "z_limit",
                  "reference_quantile")


class InfluenceMetric(PoisonSignalMetric):
    metric_name = "poison.influence"
    value_keys = SHARED_KEYS + INFLUENCE_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        def get(key, default, kind):
            value = kwargs.get(key)
            return default if value is None else kind(value)

        return Influence(
            k=get("k", 10, int),
            n_folds=get("n_folds", 5, int),
            l2=get("l2", 1e-3, float),
            max_train_rows=get("max_train_rows", 100_000, int),
            exact_max_params=get("exact_max_params", 400, int),
            shapley_k=get("shapley_k", 5, int),
            z_limit=get("z_limit", 3.5, float),
            reference_quantile=get("reference_quantile", 0.999, float),
            random_state=get("random_state", 0, int),
        )
