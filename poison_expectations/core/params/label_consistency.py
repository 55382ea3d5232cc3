"""Label consistency: rows whose label disagrees with their neighbours and an
out-of-fold model."""

from __future__ import annotations

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.common import BINOMIAL_ALPHA
from poison_expectations.core.params.shared import signal_shared

METHODS = ("knn", "model", "both")
MODELS = ("hgb", "logistic")

LABEL_CONSISTENCY = FamilyParams(
    section="label_consistency",
    signal_name="label_consistency",
    order=10,
    shared=signal_shared("k", "random_state"),
    switches={"enabled": switch(True, "Run the label-consistency expectation.")},
    signal={
        "method": Param("both", str, "knn, model, or both (probabilities averaged).", choices=METHODS,
                        note="knn | model | both"),
        "n_folds": Param(5, int, "Cross-validation folds for out-of-fold probabilities.", low=2, high=20),
        "model": Param("hgb", str, "Out-of-fold model: hgb (HistGradientBoosting) or logistic.", choices=MODELS,
                       note="hgb | logistic"),
        "max_train_rows": Param(100_000, int, "Rows each fold's model trains on at most (sampled).", low=100),
    },
    limits={
        "max_rate": Param(None, float, "Self-check only: the most rows that may be flagged (share, 0-1). A "
                          "tolerance you set from what you know of your labels' noise: a lone batch cannot tell "
                          "flips from natural label noise. null: report the rate, do not gate on it.", low=0.0,
                          high=1.0, nullable=True, note="self-check: null = report only (no stated error rate)"),
        "max_excess_over_reference": rate(0.02, "With a reference: the largest tolerated excess of the batch's "
                                                "flagged share over the reference's (absolute, 0-1)."),
        "alpha": BINOMIAL_ALPHA,
    },
)
