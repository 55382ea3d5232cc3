"""GX metric for the influence signal (influence functions + KNN-Shapley)."""

from __future__ import annotations

from poison_expectations.core.signals.influence import Influence
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class InfluenceMetric(PoisonSignalMetric):
    metric_name = "poison.influence"
    signal_class = Influence
