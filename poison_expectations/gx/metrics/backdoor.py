"""GX metrics for the backdoor and clean-label signals (thin: build the signal
from the value keys, run it on the shared Analysis)."""

from __future__ import annotations

from poison_expectations.core.signals.feature_clustering import FeatureClustering
from poison_expectations.core.signals.collision import CleanLabelCollision
from poison_expectations.core.signals.spectral import SpectralSignatures
from poison_expectations.core.signals.triggers import TriggerPatterns
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class SpectralSignatureMetric(PoisonSignalMetric):
    metric_name = "poison.spectral"
    signal_class = SpectralSignatures


class FeatureClusteringMetric(PoisonSignalMetric):
    metric_name = "poison.feature_clustering"
    signal_class = FeatureClustering


class TriggerPatternMetric(PoisonSignalMetric):
    metric_name = "poison.trigger"
    signal_class = TriggerPatterns


class CollisionMetric(PoisonSignalMetric):
    metric_name = "poison.collision"
    signal_class = CleanLabelCollision
