"""GX metric for the near-duplicate-clusters signal."""

from __future__ import annotations

from poison_expectations.core.signals.near_duplicates import NearDuplicates
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class NearDuplicateMetric(PoisonSignalMetric):
    metric_name = "poison.near_duplicate"
    signal_class = NearDuplicates
