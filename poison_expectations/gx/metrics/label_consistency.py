"""GX metric for the label-consistency signal."""

from __future__ import annotations

from poison_expectations.core.signals.label_consistency import LabelConsistency
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class LabelConsistencyMetric(PoisonSignalMetric):
    metric_name = "poison.label_consistency"
    signal_class = LabelConsistency
