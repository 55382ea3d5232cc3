"""GX metric for the label-consistency signal."""

from __future__ import annotations

from ..signals.label_consistency import LabelConsistency
from .base import SHARED_KEYS, PoisonSignalMetric

LABEL_KEYS = ("method", "n_folds", "model", "max_train_rows")


class LabelConsistencyMetric(PoisonSignalMetric):
    metric_name = "poison.label_consistency"
    value_keys = SHARED_KEYS + LABEL_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        return LabelConsistency(
            method=kwargs.get("method") or "both",
            k=int(kwargs.get("k") or 10),
            n_folds=int(kwargs.get("n_folds") or 5),
            model=kwargs.get("model") or "hgb",
            max_train_rows=int(kwargs.get("max_train_rows") or 100_000),
            random_state=int(kwargs.get("random_state") or 0),
        )
