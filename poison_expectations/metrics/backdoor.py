"""GX metrics for the backdoor and clean-label signals (thin: build the signal
from the value keys, run it on the shared Analysis)."""

from __future__ import annotations

from ..signals.activation_clustering import FeatureClustering
from ..signals.collision import CleanLabelCollision
from ..signals.spectral import SpectralSignatures
from ..signals.triggers import TriggerPatterns
from .base import SHARED_KEYS, PoisonSignalMetric


def _pick(kwargs: dict, keys: tuple[str, ...]) -> dict:
    """Keys the user set (None means "use the signal's default")."""
    return {k: kwargs[k] for k in keys if kwargs.get(k) is not None}


SPECTRAL_KEYS = ("eps", "min_delta_bic", "min_separation", "tail_quantile", "alpha", "representation",
                 "max_fit_rows")
CLUSTERING_KEYS = ("n_components", "min_share", "max_share", "min_silhouette_gain", "reclassify",
                   "min_other_share", "alpha", "representation", "max_fit_rows", "silhouette_rows",
                   "max_train_rows")
TRIGGER_KEYS = ("n_bins", "min_support", "max_support_share", "min_confidence", "min_lift", "alpha",
                "max_pair_items", "max_triggers", "min_unlike_share", "max_train_rows")
COLLISION_KEYS = ("radius_factor", "min_group_size", "min_other_share", "alpha", "max_train_rows")


def _signal_kwargs(kwargs: dict, keys: tuple[str, ...]) -> dict:
    params = _pick(kwargs, keys)
    params["random_state"] = int(kwargs.get("random_state") or 0)
    return params


class SpectralSignatureMetric(PoisonSignalMetric):
    metric_name = "poison.spectral"
    value_keys = SHARED_KEYS + SPECTRAL_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        return SpectralSignatures(**_signal_kwargs(kwargs, SPECTRAL_KEYS))


class FeatureClusteringMetric(PoisonSignalMetric):
    metric_name = "poison.clustering"
    value_keys = SHARED_KEYS + CLUSTERING_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        return FeatureClustering(**_signal_kwargs(kwargs, CLUSTERING_KEYS))


class TriggerPatternMetric(PoisonSignalMetric):
    metric_name = "poison.trigger"
    value_keys = SHARED_KEYS + TRIGGER_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        return TriggerPatterns(**_signal_kwargs(kwargs, TRIGGER_KEYS))


class CollisionMetric(PoisonSignalMetric):
    metric_name = "poison.collision"
    value_keys = SHARED_KEYS + COLLISION_KEYS

    @classmethod
    def make_signal(cls, kwargs):
        params = _signal_kwargs(kwargs, COLLISION_KEYS)
        params["k"] = int(kwargs.get("k") or 10)
        return CleanLabelCollision(**params)
