"""Backdoor and clean-label expectations: one per signal, each a count of
findings (suspicious classes, trigger patterns, collision groups) that must
stay at or below a limit (0 by default: any finding fails the batch)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from poison_expectations.core.config import RATE, Param
from poison_expectations.gx.metrics.backdoor import (
    FEATURE_CLUSTERING_KEYS,
    COLLISION_KEYS,
    SPECTRAL_KEYS,
    TRIGGER_KEYS,
    CollisionMetric,
    FeatureClusteringMetric,
    SpectralSignatureMetric,
    TriggerPatternMetric,
)
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.core.signals.representation import REPRESENTATIONS
from poison_expectations.core.signals.base import SignalResult
from poison_expectations.gx.expectations.base import PoisonBatchExpectation, shared_success_keys

DETAIL_ITEMS = 20  # findings listed in the result details at most


def _count_result(expectation, result: SignalResult, findings: list[dict], limit: int,
                  runtime_configuration: Optional[dict], extra: Optional[dict] = None) -> dict:
    details = {"findings": findings[:DETAIL_ITEMS], **(extra or {})}
    return expectation.build_result(success=len(findings) <= limit, observed_value=len(findings),
                                    flags=result.flags, result=result,
                                    runtime_configuration=runtime_configuration, details=details)


class ExpectSpectralSignatureClassCountToBeAtMost(PoisonBatchExpectation):
    """At most `max_classes` classes show a spectral signature: a separated
    tail of rows along the top singular direction of the class's centred
    representation (Tran et al. 2018). Such a class's top 1.5 x eps x n_y
    rows are flagged."""

    eps: float = 0.1
    min_delta_bic: float = 10.0
    min_separation: float = 2.0
    tail_quantile: float = 0.05
    alpha: float = 0.001
    representation: str = "auto"
    max_fit_rows: int = 100_000
    max_classes: int = 0

    metric_class: ClassVar[type] = SpectralSignatureMetric
    metric_dependencies = (SpectralSignatureMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_classes",)
    success_keys = shared_success_keys(*SPECTRAL_KEYS, "max_classes")
    renderer_template = ("At most $max_classes classes of $label_column may show a spectral signature: a "
                         "separated tail on the top singular direction of the class (poison share bound "
                         "eps $eps; mixture delta BIC >= $min_delta_bic and separation >= $min_separation, or "
                         "against a reference the tail above its $tail_quantile quantile, alpha $alpha).")
    renderer_params = ("label_column", "max_classes", "eps", "min_delta_bic", "min_separation", "tail_quantile",
                       "alpha")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        per_class = result.summary["per_class"]
        findings = [{k: v for k, v in s.items()} for s in per_class if s["separated"]]
        return _count_result(self, result, findings, self.max_classes, runtime_configuration,
                             {"representation": result.summary["representation"],
                              "per_class": [{"class": s["label"], "test": s["test"], "separated": s["separated"]}
                                            for s in per_class]})


class ExpectFeatureClusteringClassCountToBeAtMost(PoisonBatchExpectation):
    """At most `max_classes` classes split off a small separate cluster
    (2-means on the class's principal components, Chen et al. 2018) that is
    confirmed by exclusionary reclassification or by the reference."""

    n_components: int = 10
    min_share: float = 0.01
    max_share: float = 0.15
    min_silhouette_gain: float = 0.1
    reclassify: bool = True
    min_other_share: float = 0.5
    alpha: float = 0.001
    representation: str = "auto"
    max_fit_rows: int = 50_000
    silhouette_rows: int = 5_000
    max_train_rows: int = 50_000
    max_classes: int = 0

    metric_class: ClassVar[type] = FeatureClusteringMetric
    metric_dependencies = (FeatureClusteringMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_classes",)
    success_keys = shared_success_keys(*FEATURE_CLUSTERING_KEYS, "max_classes")
    renderer_template = ("At most $max_classes classes of $label_column may split off a separate cluster holding "
                         "$min_share to $max_share of the class (2-means on $n_components components, silhouette "
                         "at least $min_silhouette_gain above one Gaussian blob's), confirmed by reclassification "
                         "(at least $min_other_share to other classes) or the reference (alpha $alpha).")
    renderer_params = ("label_column", "max_classes", "min_share", "max_share", "n_components",
                       "min_silhouette_gain", "min_other_share", "alpha")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        per_class = result.summary["per_class"]
        findings = [s for s in per_class if s["suspicious"]]
        return _count_result(self, result, findings, self.max_classes, runtime_configuration,
                             {"representation": result.summary["representation"]})


class ExpectFeatureClusterClassCountToBeAtMost(ExpectFeatureClusteringClassCountToBeAtMost):
    """Deprecated name of `ExpectFeatureClusteringClassCountToBeAtMost`, kept so
    suites stored before the rename (type
    `expect_feature_cluster_class_count_to_be_at_most`) still load and run.
    New suites are written with the new name."""


class ExpectTriggerPatternCountToBeAtMost(PoisonBatchExpectation):
    """At most `max_patterns` trigger patterns: rare feature values or pairs
    of values that predict one label almost surely while their rows look
    like another class without those columns (a tabular Neural Cleanse)."""

    n_bins: int = 20
    min_support: int = 20
    max_support_share: float = 0.2
    min_confidence: float = 0.95
    min_lift: float = 1.25
    alpha: float = 0.001
    max_pair_items: int = 40
    max_triggers: int = 5
    min_unlike_share: float = 0.5
    max_train_rows: int = 50_000
    max_patterns: int = 0

    metric_class: ClassVar[type] = TriggerPatternMetric
    metric_dependencies = (TriggerPatternMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_patterns",)
    success_keys = shared_success_keys(*TRIGGER_KEYS, "max_patterns")
    renderer_template = ("At most $max_patterns trigger patterns may predict a value of $label_column: a feature "
                         "value or pair of values on $min_support rows or more but at most $max_support_share "
                         "of rows, with confidence >= $min_confidence, lift >= $min_lift (BH-adjusted p <= "
                         "$alpha), whose rows mostly (>= $min_unlike_share) look like another class without "
                         "those columns.")
    renderer_params = ("label_column", "max_patterns", "min_support", "max_support_share", "min_confidence",
                       "min_lift", "alpha", "min_unlike_share")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        summary = result.summary
        findings = [{k: p[k] for k in ("text", "label", "rows", "support", "confidence", "lift", "q_value",
                                       "unlike_share", "looks_like", "pattern", "ids")}
                    for p in summary["patterns"]]
        return _count_result(self, result, findings, self.max_patterns, runtime_configuration,
                             {"candidates_tested": summary["candidates_tested"],
                              "candidates_significant": summary["candidates_significant"],
                              "rejected": [{"text": p["text"], "label": p["label"], "rows": p["rows"],
                                            "unlike_share": p["unlike_share"]} for p in summary["rejected"]]})


class ExpectCleanLabelCollisionGroupCountToBeAtMost(PoisonBatchExpectation):
    """At most `max_groups` clean-label collision groups: tightly packed rows
    of one label whose surroundings (the reference's neighbours, or a model
    trained without them) say another class."""

    radius_factor: float = 0.5
    min_group_size: int = 5
    min_other_share: float = 0.5
    alpha: float = 0.001
    max_train_rows: int = 50_000
    max_groups: int = 0

    metric_class: ClassVar[type] = CollisionMetric
    metric_dependencies = (CollisionMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_groups",)
    success_keys = shared_success_keys(*COLLISION_KEYS, "max_groups")
    renderer_template = ("At most $max_groups groups of $min_group_size or more rows of one $label_column, packed "
                         "within $radius_factor x the median nearest-neighbour distance, may sit where at least "
                         "$min_other_share of them look like another class (alpha $alpha).")
    renderer_params = ("label_column", "max_groups", "min_group_size", "radius_factor", "min_other_share", "alpha")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        summary = result.summary
        return _count_result(self, result, summary["groups"], self.max_groups, runtime_configuration,
                             {"mode": summary["mode"], "radius": summary["radius"],
                              "candidate_groups": summary["candidate_groups"]})


# -- config families -------------------------------------------------------------

def _builder(cls):
    def build(section: dict, shared: dict) -> list:
        params = {k: v for k, v in section.items() if k != "enabled"}
        return [cls(**shared, **params)]
    return build


def _calibrator(signal: str, key: str, count: Any):
    """Set the limit to the count a trusted run shows (its natural findings)."""
    def calibrate(section: dict, results: dict) -> dict:
        result = results.get(signal)
        return {} if result is None else {key: int(count(result.summary))}
    return calibrate


FRACTION = dict(kind=float, low=0.0, high=1.0)
ALPHA = Param(0.001, doc="Significance level of the signal's test (after its multiple-testing correction).", **RATE)
REPRESENTATION = Param("auto", str, "auto: the embedding columns when data.embedding_columns names some, else "
                                    "every encoded feature; features; embedding.", choices=REPRESENTATIONS)

register_family(ExpectationFamily(
    section="spectral_signatures",
    order=40,
    params={
        "enabled": Param(True, bool, "Run the spectral-signature expectation."),
        "eps": Param(0.1, doc="Upper bound of the poisoned share of a class; 1.5 x eps x class rows are flagged "
                              "in a class with a separated tail (Tran et al.).", **FRACTION),
        "min_delta_bic": Param(10.0, float, "Self-check: BIC points a 2-component mixture of the projection must "
                                            "gain over one Gaussian (10 = very strong evidence).", low=0.0),
        "min_separation": Param(2.0, float, "Self-check: Ashman's D between the two components (D > 2: "
                                            "separated).", low=0.0),
        "tail_quantile": Param(0.05, doc="With a reference: the tail starts at the reference's (1 - this) "
                                         "quantile of the score.", kind=float, low=1e-4, high=0.5),
        "alpha": ALPHA,
        "representation": REPRESENTATION,
        "max_fit_rows": Param(100_000, int, "Rows the mixture is fitted on at most (sampled).", low=100),
        "max_classes": Param(0, int, "Limit: classes with a spectral signature allowed.", low=0),
    },
    build=_builder(ExpectSpectralSignatureClassCountToBeAtMost),
    calibrate=_calibrator("spectral", "max_classes", lambda s: len(s["suspicious_classes"])),
))

register_family(ExpectationFamily(
    section="feature_clustering",
    order=41,
    params={
        "enabled": Param(True, bool, "Run the feature/activation clustering expectation."),
        "n_components": Param(10, int, "Principal components kept per class before 2-means.", low=1, high=1000),
        "min_share": Param(0.01, doc="Smallest share of a class the small cluster may hold to count.", **FRACTION),
        "max_share": Param(0.15, doc="Largest share of a class the small cluster may hold (1.5 x eps for eps = "
                                     "10% poison per class).", **FRACTION),
        "min_silhouette_gain": Param(0.1, float, "Silhouette the split must reach above a Gaussian blob's "
                                                 "(parametric null).", low=0.0, high=2.0),
        "reclassify": Param(True, bool, "Self-check: confirm by exclusionary reclassification (Chen et al.)."),
        "min_other_share": Param(0.5, doc="Share of the cluster a model trained without it must assign to other "
                                          "classes.", **FRACTION),
        "alpha": ALPHA,
        "representation": REPRESENTATION,
        "max_fit_rows": Param(50_000, int, "Rows the projection and 2-means are fitted on at most.", low=100),
        "silhouette_rows": Param(5_000, int, "Rows the silhouette is computed on at most (sampled).", low=50),
        "max_train_rows": Param(50_000, int, "Rows the reclassification model trains on at most.", low=100),
        "max_classes": Param(0, int, "Limit: classes with a confirmed small cluster allowed.", low=0),
    },
    build=_builder(ExpectFeatureClusteringClassCountToBeAtMost),
    calibrate=_calibrator("feature_clustering", "max_classes", lambda s: len(s["suspicious_classes"])),
))

register_family(ExpectationFamily(
    section="trigger_patterns",
    order=42,
    params={
        "enabled": Param(True, bool, "Run the trigger-pattern expectation."),
        "n_bins": Param(20, int, "Quantile bins per numeric column (exact repeated values are items too).",
                        low=2, high=1000),
        "min_support": Param(20, int, "Rows a pattern must hold at least.", low=2),
        "max_support_share": Param(0.2, doc="Rarity: largest share of rows a trigger may hold.", **FRACTION),
        "min_confidence": Param(0.95, doc="Smallest P(label | pattern) of a trigger.", **FRACTION),
        "min_lift": Param(1.25, float, "Smallest confidence / P(label) of a trigger.", low=1.0),
        "alpha": ALPHA,
        "max_pair_items": Param(40, int, "Enriched single items that seed pairs (bounds the pair search).",
                                low=0, high=500),
        "max_triggers": Param(5, int, "Distinct candidate triggers checked by reclassification.", low=1,
                              high=100),
        "min_unlike_share": Param(0.5, doc="Share of a trigger's rows that must look like another class "
                                           "without the pattern's columns.", **FRACTION),
        "max_train_rows": Param(50_000, int, "Rows the reclassification model trains on at most.", low=100),
        "max_patterns": Param(0, int, "Limit: trigger patterns allowed.", low=0),
    },
    build=_builder(ExpectTriggerPatternCountToBeAtMost),
    calibrate=_calibrator("trigger", "max_patterns", lambda s: len(s["patterns"])),
))

register_family(ExpectationFamily(
    section="clean_label_collision",
    order=43,
    params={
        "enabled": Param(True, bool, "Run the clean-label collision expectation."),
        "radius_factor": Param(0.5, float, "Tight-group radius, in multiples of the median 1st-neighbour "
                                           "distance.", low=0.0, high=10.0),
        "min_group_size": Param(5, int, "Rows a tight group needs to be tested.", low=2),
        "min_other_share": Param(0.5, doc="Share of a group that must look like another class.", **FRACTION),
        "alpha": ALPHA,
        "max_train_rows": Param(50_000, int, "Rows the self-check model trains on at most.", low=100),
        "max_groups": Param(0, int, "Limit: collision groups allowed.", low=0),
    },
    build=_builder(ExpectCleanLabelCollisionGroupCountToBeAtMost),
    calibrate=_calibrator("collision", "max_groups", lambda s: len(s["groups"])),
))
