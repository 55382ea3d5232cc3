"""GX metric for the label-consistency signal."""

from __future__ import annotations

from ..signals.label_consistency import LabelConsistency
from .base import PoisonSignalMetric

LABEL_KEYS = ("method", "n_folds", "model", "max_train_rows")


class LabelConsistencyMetric(PoisonSignalMetric):
    metric_name = "poison.label_consistency"
    signal_class = LabelConsistency
    signal_keys = LABEL_KEYS
