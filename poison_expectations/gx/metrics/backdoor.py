"""GX metrics for the backdoor and clean-label signals (thin: build the signal
from the value keys, run it on the shared Analysis)."""

from __future__ import annotations

from poison_expectations.core.signals.feature_clustering import FeatureClustering
from poison_expectations.core.signals.collision import CleanLabelCollision
from poison_expectations.core.signals.spectral import SpectralSignatures
from poison_expectations.core.signals.triggers import TriggerPatterns
from poison_expectations.gx.metrics.base import PoisonSignalMetric

SPECTRAL_KEYS = ("eps", "min_delta_bic", "min_separation", "tail_quantile", "alpha", "representation",
                 "max_fit_rows")

FEATURE_CLUSTERING_KEYS = ("n_components", "min_share", "max_share", "min_silhouette_gain", "reclassify",
                   "min_other_share", "alpha", "representation", "max_fit_rows", "silhouette_rows",
                   "max_train_rows")

TRIGGER_KEYS = ("n_bins", "min_support", "max_support_share", "min_confidence", "min_lift", "alpha",
                "max_pair_items", "max_triggers", "min_unlike_share", "max_train_rows")

COLLISION_KEYS = ("radius_factor", "min_group_size", "min_other_share", "alpha", "max_train_rows")


class SpectralSignatureMetric(PoisonSignalMetric):
    metric_name = "poison.spectral"
    signal_class = SpectralSignatures
    signal_keys = SPECTRAL_KEYS


class FeatureClusteringMetric(PoisonSignalMetric):
    metric_name = "poison.feature_clustering"
    signal_class = FeatureClustering
    signal_keys = FEATURE_CLUSTERING_KEYS


class TriggerPatternMetric(PoisonSignalMetric):
    metric_name = "poison.trigger"
    signal_class = TriggerPatterns
    signal_keys = TRIGGER_KEYS


class CollisionMetric(PoisonSignalMetric):
    metric_name = "poison.collision"
    signal_class = CleanLabelCollision
    signal_keys = COLLISION_KEYS
