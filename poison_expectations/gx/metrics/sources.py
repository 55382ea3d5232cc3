"""GX metric for the per-source statistics (aggregates the other signals' flags)."""

from __future__ import annotations

from poison_expectations.core.signals.sources import SourceStatistics
from poison_expectations.gx.metrics.base import PoisonSignalMetric

SOURCE_KEYS = ("signals", "exclude_signals", "min_rows", "alpha", "min_excess")


class SourceStatisticsMetric(PoisonSignalMetric):
    metric_name = "poison.sources"
    signal_class = SourceStatistics
    signal_keys = SOURCE_KEYS
