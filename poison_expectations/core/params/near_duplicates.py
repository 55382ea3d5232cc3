"""Near-duplicate clusters: floods of copies and copies with conflicting labels."""

from __future__ import annotations

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.shared import signal_shared

NEAR_DUPLICATES = FamilyParams(
    section="near_duplicates",
    signal_name="near_duplicate",
    order=20,
    needs_label=False,
    shared=signal_shared("k", "random_state"),
    switches={"enabled": switch(True, "Run the near-duplicate cluster expectations.")},
    signal={
        "radius": Param(None, float, "Near-duplicate radius in encoded (robust-standardised) units; null: the "
                        "radius_quantile of 1st-NN distances (reference when given).", nullable=True, low=0.0,
                        note="null: radius_quantile of 1st-NN distances (reference when given), in encoded units"),
        "radius_quantile": Param(0.001, float, "Quantile of the fitting table's 1st-NN distances (above a robust "
                                 "lower fence) that sets the default radius.", low=0.0, low_open=True, high=0.5,
                                 note="0.1% quantile, over distances above a robust lower fence (copies cannot "
                                      "shrink it)"),
        "size_alpha": Param(0.001, float, "A cluster size is improbable when the clean cluster-size model expects "
                            "fewer than this many clusters that large in the batch (at least 1e-12: the size "
                            "model's tail is summed out to that level).", low=1e-12, high=0.5,
                            note="a cluster size is improbable when fewer than 0.001 such clusters are "
                                 "expected without copies"),
        "max_cluster_size": Param(None, int, "Absolute limit on a cluster's rows; null: the largest size the model "
                                  "does not call improbable.", nullable=True, low=1,
                                  note="absolute limit on a cluster's rows; null: the largest size the model allows"),
    },
    limits={
        "max_share": rate(0.01, "Self-check: the largest tolerated share of rows inside suspicious clusters (0-1).",
                          note="self-check: at most 1% of rows inside suspicious clusters"),
        "max_excess_over_reference": rate(0.005, "With a reference: the largest tolerated excess of the batch's "
                                          "suspicious share over the reference's (absolute, 0-1).",
                                          note="with a reference: at most 0.5 points above the reference's share"),
        "alpha": Param(0.001, float, "Significance level of the reference gate and the chance allowance for "
                       "conflicting clusters (at least 1e-12: below, 1 - alpha rounds to 1 and the Poisson "
                       "allowance is infinite).", low=1e-12, high=1.0,
                       note="reference gate; chance allowance for conflicting clusters (Poisson quantile)"),
        "max_conflicting_clusters": Param(0, int, "Conflicting-label clusters tolerated beyond those expected by "
                                          "chance.", low=0,
                                          note="conflicting-label clusters tolerated beyond those expected by chance"),
    },
)
