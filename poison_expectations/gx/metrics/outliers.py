"""GX metric for the class-conditional outlier signal (sphere, slab, ECOD/IForest)."""

from __future__ import annotations

from poison_expectations.core.signals.outliers import Outliers
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class OutlierMetric(PoisonSignalMetric):
    metric_name = "poison.outlier"
    signal_class = Outliers
