"""Backdoor and clean-label expectations: one per signal, each a count of
findings (suspicious classes, trigger patterns, collision groups) that must
stay at or below a limit (0 by default: any finding fails the batch)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from poison_expectations.core.params import (CLEAN_LABEL_COLLISION, FEATURE_CLUSTERING, SPECTRAL_SIGNATURES,
                                             TRIGGER_PATTERNS)
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.core.signals.base import SignalResult
from poison_expectations.gx.expectations.base import (GATE_PARAMS, GATE_SENTENCE, PoisonBatchExpectation,
                                                      shared_success_keys)
from poison_expectations.gx.expectations.fields import family_fields
from poison_expectations.gx.metrics.backdoor import (
    CollisionMetric,
    FeatureClusteringMetric,
    SpectralSignatureMetric,
    TriggerPatternMetric,
)

DETAIL_ITEMS = 20  # findings listed in the result details at most


def _count_result(expectation, result: SignalResult, findings: list[dict], limit: int,
                  runtime_configuration: Optional[dict], extra: Optional[dict] = None) -> dict:
    details = {"findings": findings[:DETAIL_ITEMS], **(extra or {})}
    verdict = expectation.verdict(result)
    if verdict is not None:
        return expectation.verdict_result(result, verdict, runtime_configuration, details)
    return expectation.build_result(success=len(findings) <= limit, observed_value=len(findings),
                                    flags=result.flags, result=result,
                                    runtime_configuration=runtime_configuration, details=details)


class ExpectSpectralSignatureClassCountToBeAtMost(PoisonBatchExpectation,
                                                  family_fields(SPECTRAL_SIGNATURES, "max_classes")):
    """At most `max_classes` classes show a spectral signature: a separated
    tail of rows along the top singular direction of the class's centred
    representation (Tran et al. 2018). Such a class's top 1.5 x eps x n_y
    rows are flagged."""

    metric_class: ClassVar[type] = SpectralSignatureMetric
    metric_dependencies = (SpectralSignatureMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_classes",)
    success_keys = shared_success_keys(*SPECTRAL_SIGNATURES.signal_keys, "max_classes")
    renderer_template = ("At most $max_classes classes of $label_column may show a spectral signature: a "
                         "separated tail on the top singular direction of the class (poison share bound "
                         "eps $eps; mixture delta BIC >= $min_delta_bic and separation >= $min_separation, or "
                         "against a reference the tail above its $tail_quantile quantile, alpha $alpha)."
                         + GATE_SENTENCE)
    renderer_params = ("label_column", "max_classes", "eps", "min_delta_bic", "min_separation", "tail_quantile",
                       "alpha", *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        per_class = result.summary["per_class"]
        findings = [{k: v for k, v in s.items()} for s in per_class if s["separated"]]
        return _count_result(self, result, findings, self.max_classes, runtime_configuration,
                             {"representation": result.summary["representation"],
                              "per_class": [{"class": s["label"], "test": s["test"], "separated": s["separated"]}
                                            for s in per_class]})


class ExpectFeatureClusteringClassCountToBeAtMost(PoisonBatchExpectation,
                                               family_fields(FEATURE_CLUSTERING, "max_classes")):
    """At most `max_classes` classes split off a small separate cluster
    (2-means on the class's principal components, Chen et al. 2018) that is
    confirmed by exclusionary reclassification or by the reference."""

    metric_class: ClassVar[type] = FeatureClusteringMetric
    metric_dependencies = (FeatureClusteringMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_classes",)
    success_keys = shared_success_keys(*FEATURE_CLUSTERING.signal_keys, "max_classes")
    renderer_template = ("At most $max_classes classes of $label_column may split off a separate cluster holding "
                         "$min_share to $max_share of the class (2-means on $n_components components, silhouette "
                         "at least $min_silhouette_gain above one Gaussian blob's), confirmed by reclassification "
                         "(at least $min_other_share to other classes) or the reference (alpha $alpha)."
                         + GATE_SENTENCE)
    renderer_params = ("label_column", "max_classes", "min_share", "max_share", "n_components",
                       "min_silhouette_gain", "min_other_share", "alpha", *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        per_class = result.summary["per_class"]
        findings = [s for s in per_class if s["suspicious"]]
        return _count_result(self, result, findings, self.max_classes, runtime_configuration,
                             {"representation": result.summary["representation"]})


# The type name before feature clustering got one name, registered with GX so
# that suites stored earlier (`expect_feature_cluster_class_count_to_be_at_most`)
# still load and run. Not exported and built by no family: new suites are
# written with the new name.
_DEPRECATED_FEATURE_CLUSTER = type("ExpectFeatureClusterClassCountToBeAtMost",
                                   (ExpectFeatureClusteringClassCountToBeAtMost,),
                                   {"__module__": __name__, "__doc__": "Deprecated name of "
                                    "ExpectFeatureClusteringClassCountToBeAtMost (stored suites)."})


class ExpectTriggerPatternCountToBeAtMost(PoisonBatchExpectation,
                                          family_fields(TRIGGER_PATTERNS, "max_patterns")):
    """At most `max_patterns` trigger patterns: rare feature values or pairs
    of values that predict one label almost surely while their rows look
    like another class without those columns (a tabular Neural Cleanse)."""

    metric_class: ClassVar[type] = TriggerPatternMetric
    metric_dependencies = (TriggerPatternMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_patterns",)
    success_keys = shared_success_keys(*TRIGGER_PATTERNS.signal_keys, "max_patterns")
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
        level = self.test_level(self.alpha)  # patterns are BH-selected at alpha; the checkpoint's share may be lower
        findings = [{k: p[k] for k in ("text", "label", "rows", "support", "confidence", "lift", "q_value",
                                       "unlike_share", "looks_like", "pattern", "ids")}
                    for p in summary["patterns"] if p["q_value"] <= level]
        return _count_result(self, result, findings, self.max_patterns, runtime_configuration,
                             {"candidates_tested": summary["candidates_tested"],
                              "candidates_significant": summary["candidates_significant"],
                              "rejected": [{"text": p["text"], "label": p["label"], "rows": p["rows"],
                                            "unlike_share": p["unlike_share"]} for p in summary["rejected"]]})


class ExpectCleanLabelCollisionGroupCountToBeAtMost(PoisonBatchExpectation,
                                                    family_fields(CLEAN_LABEL_COLLISION, "max_groups")):
    """At most `max_groups` clean-label collision groups: tightly packed rows
    of one label whose surroundings (the reference's neighbours, or a model
    trained without them) say another class."""

    metric_class: ClassVar[type] = CollisionMetric
    metric_dependencies = (CollisionMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = ("max_groups",)
    success_keys = shared_success_keys(*CLEAN_LABEL_COLLISION.signal_keys, "max_groups")
    renderer_template = ("At most $max_groups groups of $min_group_size or more rows of one $label_column, packed "
                         "within $radius_factor x the median nearest-neighbour distance, may sit where at least "
                         "$min_other_share of them look like another class (alpha $alpha)."
                         + GATE_SENTENCE)
    renderer_params = ("label_column", "max_groups", "min_group_size", "radius_factor", "min_other_share", "alpha",
                       *GATE_PARAMS)

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


register_family(ExpectationFamily(
    declaration=SPECTRAL_SIGNATURES,
    build=_builder(ExpectSpectralSignatureClassCountToBeAtMost),
    calibrate=_calibrator("spectral", "max_classes", lambda s: len(s["suspicious_classes"])),
))

register_family(ExpectationFamily(
    declaration=FEATURE_CLUSTERING,
    build=_builder(ExpectFeatureClusteringClassCountToBeAtMost),
    calibrate=_calibrator("feature_clustering", "max_classes", lambda s: len(s["suspicious_classes"])),
))

register_family(ExpectationFamily(
    declaration=TRIGGER_PATTERNS,
    build=_builder(ExpectTriggerPatternCountToBeAtMost),
    calibrate=_calibrator("trigger", "max_patterns", lambda s: len(s["patterns"])),
))

register_family(ExpectationFamily(
    declaration=CLEAN_LABEL_COLLISION,
    build=_builder(ExpectCleanLabelCollisionGroupCountToBeAtMost),
    calibrate=_calibrator("collision", "max_groups", lambda s: len(s["groups"])),
))
