"""Feature / activation clustering (Chen et al. 2018): a small separate
cluster within a class."""

from __future__ import annotations

from dataclasses import replace

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.common import MAX_TRAIN_ROWS, REPRESENTATION, TEST_ALPHA
from poison_expectations.core.params.shared import signal_shared

FEATURE_CLUSTERING = FamilyParams(
    section="feature_clustering",
    signal_name="feature_clustering",
    order=41,
    note="Chen et al. 2018 activation clustering, per class",
    shared=signal_shared("random_state"),
    switches={"enabled": switch(True, "Run the feature/activation clustering expectation.")},
    signal={
        "n_components": Param(10, int, "Principal components kept per class before 2-means.", low=1, high=1000,
                              note="PCA dimensions before 2-means"),
        "min_share": rate(0.01, "Smallest share of a class the small cluster may hold to count.",
                          note="small cluster must hold 1% ..."),
        "max_share": rate(0.15, "Largest share of a class the small cluster may hold (1.5 x eps for eps = 10% "
                                "poison per class).", note="... to 15% (1.5 x eps) of the class"),
        "min_silhouette_gain": Param(0.1, float, "Silhouette the split must reach above a Gaussian blob's "
                                     "(parametric null).", low=0.0, high=2.0,
                                     note="silhouette above the 2-means silhouette of one Gaussian blob"),
        "reclassify": switch(True, "Self-check: confirm by exclusionary reclassification (Chen et al.).",
                             note="self-check: exclusionary reclassification confirms"),
        "min_other_share": rate(0.5, "Share of the cluster a model trained without it must assign to other "
                                     "classes.", note="majority of the cluster must go to other classes"),
        "alpha": replace(TEST_ALPHA, note="binomial test against the model's held-out error, Bonferroni over classes"),
        "representation": REPRESENTATION,
        "max_fit_rows": Param(50_000, int, "Rows the projection and 2-means are fitted on at most.", low=100),
        "silhouette_rows": Param(5_000, int, "Rows the silhouette is computed on at most (sampled).", low=50),
        "max_train_rows": MAX_TRAIN_ROWS,
    },
    limits={
        "max_classes": Param(0, int, "Limit: classes with a confirmed small cluster allowed.", low=0,
                             note="limit: classes with a confirmed small cluster"),
    },
)
