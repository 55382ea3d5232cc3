"""GX metric for the class-conditional outlier signal (sphere, slab, ECOD/IForest)."""

from __future__ import annotations

from ..signals.outliers import Outliers
from .base import SHARED_KEYS, PoisonSignalMetric

OUTLIER_KEYS = ("detector", "z_limit", "reference_quantile")


class OutlierMetric(PoisonSignalMetric):
    metric_name = "poison.outlier"
    value_keys = SHARED_KEYS + OUTLIER_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        def get(key, default, kind):
            value = kwargs.get(key)
            return default if value is None else kind(value)

        return Outliers(
            detector=get("detector", "ecod", str),
            z_limit=get("z_limit", 3.5, float),
            reference_quantile=get("reference_quantile", 0.999, float),
            random_state=get("random_state", 0, int),
        )
