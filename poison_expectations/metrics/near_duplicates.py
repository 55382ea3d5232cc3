"""GX metric for the near-duplicate-clusters signal."""

from __future__ import annotations

from ..signals.near_duplicates import DEFAULT_QUANTILE, NearDuplicates
from .base import SHARED_KEYS, PoisonSignalMetric

NEAR_DUPLICATE_KEYS = ("radius", "radius_quantile", "size_alpha", "max_cluster_size")


class NearDuplicateMetric(PoisonSignalMetric):
    metric_name = "poison.near_duplicate"
    value_keys = SHARED_KEYS + NEAR_DUPLICATE_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        radius = kwargs.get("radius")
        limit = kwargs.get("max_cluster_size")
        return NearDuplicates(
            k=int(kwargs.get("k") or 10),
            radius=None if radius is None else float(radius),
            radius_quantile=float(kwargs.get("radius_quantile") or DEFAULT_QUANTILE),
            size_alpha=float(kwargs.get("size_alpha") or 0.001),
            max_cluster_size=None if limit is None else int(limit),
            random_state=int(kwargs.get("random_state") or 0),
        )
