"""GX metric for the per-source statistics (aggregates the other signals' flags)."""

from __future__ import annotations

from poison_expectations.core.signals.sources import SourceStatistics
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class SourceStatisticsMetric(PoisonSignalMetric):
    metric_name = "poison.sources"
    signal_class = SourceStatistics
