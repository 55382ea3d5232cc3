"""Influence: rows the model leans on too much (influence functions, KNN-Shapley)."""

from __future__ import annotations

from poison_expectations.core.params.base import FamilyParams, Param, switch
from poison_expectations.core.params.common import BINOMIAL_ALPHA, EXCESS, REFERENCE_QUANTILE, Z_LIMIT
from poison_expectations.core.params.shared import signal_shared

INFLUENCE = FamilyParams(
    section="influence",
    signal_name="influence",
    order=40,
    shared=signal_shared("k", "random_state"),
    switches={"enabled": switch(True, "Run the influence expectation (influence functions and KNN-Shapley).")},
    signal={
        "n_folds": Param(5, int, "Out-of-fold splits: each row is scored by a model trained without its fold.",
                         low=2, high=20, note="out-of-fold: no row is scored by a model that saw it"),
        "l2": Param(1e-3, float, "L2 penalty of the logistic model, on the scale of the mean log-loss.", low=1e-8,
                    high=10.0, note="L2 penalty on the mean-log-loss scale (keeps the Hessian positive definite)"),
        "max_train_rows": Param(100_000, int, "Rows each fold's model (and its Hessian) uses at most (sampled).",
                                low=100, note="rows per fold model / Hessian (sampled)"),
        "exact_max_params": Param(400, int, "Models with at most this many parameters use the exact Hessian; "
                                  "larger ones conjugate gradients.", low=1,
                                  note="exact Hessian up to this many model parameters, else conjugate gradients"),
        "shapley_k": Param(5, int, "K of the K-NN classifier whose Shapley values are computed (at most the "
                           "shared neighbours.k).", low=1, high=200, note="K of the K-NN classifier valued by "
                                                                          "KNN-Shapley"),
        "z_limit": Z_LIMIT,
        "reference_quantile": REFERENCE_QUANTILE,
    },
    limits={
        "max_rate": Param(None, float, "Self-check only: the largest share of rows over the cut (0-1), a "
                          "tolerance, not a bound (clean real tables exceed 5%). null: report the rate, do not gate "
                          "on it.", low=0.0, high=1.0, nullable=True,
                          note="self-check: null = report only (no stated error rate)"),
        "max_excess_over_reference": EXCESS,
        "alpha": BINOMIAL_ALPHA,
    },
)
