"""Class-conditional outliers: rows far from their own class."""

from __future__ import annotations

from poison_expectations.core.params.base import FamilyParams, Param, switch
from poison_expectations.core.params.common import BINOMIAL_ALPHA, EXCESS, REFERENCE_QUANTILE, Z_LIMIT
from poison_expectations.core.params.shared import signal_shared

DETECTORS = ("ecod", "iforest")

OUTLIERS = FamilyParams(
    section="outliers",
    signal_name="outlier",
    order=45,
    needs_label=False,
    shared=signal_shared("random_state"),
    switches={"enabled": switch(True, "Run the class-conditional outlier expectation.")},
    signal={
        "detector": Param("ecod", str, "Per-class feature detector: ecod (parameter-free) or iforest.",
                          choices=DETECTORS, note="ecod (parameter-free, linear time) | iforest"),
        "z_limit": Z_LIMIT,
        "reference_quantile": REFERENCE_QUANTILE,
    },
    limits={
        "max_rate": Param(None, float, "Self-check only: the largest share of rows over the cut (0-1), a "
                          "tolerance you set for your features' tails (real tables exceed 5%). null: report the "
                          "rate, do not gate on it.", low=0.0, high=1.0, nullable=True,
                          note="self-check: null = report only (no stated error rate)"),
        "max_excess_over_reference": EXCESS,
        "alpha": BINOMIAL_ALPHA,
    },
)
