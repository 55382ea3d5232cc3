"""GX metric for the per-source statistics (aggregates the other signals' flags)."""

from __future__ import annotations

from ..signals.sources import SourceStatistics
from .base import SHARED_KEYS, PoisonSignalMetric

SOURCE_KEYS = ("signals", "exclude_signals", "min_rows", "alpha", "min_excess")


class SourceStatisticsMetric(PoisonSignalMetric):
    metric_name = "poison.sources"
    value_keys = SHARED_KEYS + SOURCE_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        return SourceStatistics(
            signals=tuple(kwargs["signals"]) if kwargs.get("signals") is not None else None,
            exclude_signals=tuple(kwargs.get("exclude_signals") or ()),
            min_rows=int(kwargs.get("min_rows") or 25),
            alpha=float(kwargs.get("alpha") or 0.01),
            min_excess=float(kwargs["min_excess"]) if kwargs.get("min_excess") is not None else 0.10,
        )
