"""Near-duplicate cluster expectations: floods of copies and conflicting copies.

Three expectations share one signal run (`poison.near_duplicate`):
- the share of rows inside suspicious clusters (improbable size, conflicting
  labels, or over the size limit) is at most `max_share`, or, against a
  reference, not significantly and materially above the reference's share;
- the largest cluster holds at most `max_cluster_size` rows (null: the
  largest size the clean cluster-size model allows at `size_alpha`);
- at most `max_conflicting_clusters` conflicting-label clusters beyond the
  number expected by chance (the fitting table's nearest-neighbour label
  disagreement; the reference's when one is given).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from poison_expectations.core.errors import InputError
from poison_expectations.core.gates import clopper_pearson_upper
from poison_expectations.core.params import NEAR_DUPLICATES
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.gx.expectations.base import (GATE_PARAMS, GATE_SENTENCE, PoisonBatchExpectation,
                                                      against_reference, shared_success_keys)
from poison_expectations.gx.expectations.fields import family_fields
from poison_expectations.gx.expectations.rate_gate import judge_rate
from poison_expectations.gx.metrics.near_duplicates import NearDuplicateMetric

SIGNAL_KEYS = NEAR_DUPLICATES.signal_keys
LATTICE_RULES = ("lattice", "exact_only")  # radius rules of data whose values sit on a grid
SHARE_LIMITS = ("max_share", "max_excess_over_reference", "alpha")
CONFLICT_LIMITS = ("max_conflicting_clusters", "alpha")


class _NearDuplicateExpectation(PoisonBatchExpectation, family_fields(NEAR_DUPLICATES)):
    """Fields (the signal's) and helpers shared by the near-duplicate expectations (abstract)."""

    metric_class: ClassVar[type] = NearDuplicateMetric
    metric_dependencies = (NearDuplicateMetric.metric_name,)

    def _clusters(self, result, keep) -> list[dict]:
        return [c for c in result.summary["cluster_summaries"] if keep(c)]

    def _cluster_rows(self, result, cluster_mask: np.ndarray) -> np.ndarray:
        cid = result.columns["cluster_id"]
        rows = np.zeros(result.n_rows, dtype=bool)
        inside = cid >= 0
        rows[inside] = cluster_mask[cid[inside]]
        return rows

    def judges(self, result) -> bool:
        """Besides the reference rule of the base class: in a self-check of
        lattice data (the radius rule found most nearest neighbours one value
        step away, or only exact copies; or the values are recorded on a grid
        no finer than the radius) near duplicates are the grain of the data,
        the cluster-size model (a sparse random geometric graph) does not
        hold, and a lone batch cannot tell a flood from its own values:
        report, do not gate."""
        lattice = ((result.summary.get("radius_rule") or {}).get("method") in LATTICE_RULES
                   or bool(result.summary.get("recorded_on_grid")))
        return super().judges(result) and (against_reference(result) or not lattice)

    def _without_clusters(self, result, runtime_configuration) -> dict:
        """A result without clusters (the Spark engine tests density and builds
        none): an expectation that only reports clusters passes saying so; one
        that gates on them cannot be evaluated, and fails with one line."""
        if self.judges(result):
            raise InputError(f"{type(self).__name__}: near-duplicate clusters are not computed on Spark (it tests "
                             "density against the trusted side); validate this expectation on a pandas batch")
        return self.build_result(success=True, observed_value=None, flags=np.zeros(len(result.flags), dtype=bool),
                                 result=result, runtime_configuration=runtime_configuration,
                                 details={"clusters": "not computed on Spark (the share expectation's density "
                                                      "test judges near duplicates there)"})

    def _base_details(self, result) -> dict:
        s = result.summary
        return {"radius": s["radius"], "radius_rule": s["radius_rule"], "clusters": s["clusters"],
                "rows_in_clusters": s["rows_in_clusters"], "largest_cluster": s["largest_cluster"],
                "size_model": s["size_model"]}


class ExpectNearDuplicateClusterShareToBeAtMost(_NearDuplicateExpectation,
                                                family_fields(NEAR_DUPLICATES, *SHARE_LIMITS, signal=False)):
    """The share of rows inside suspicious near-duplicate clusters (improbable
    size, conflicting labels, or over the size limit) is at most `max_share`;
    with a reference, the share is not significantly (alpha) and materially
    (max_excess_over_reference) above the reference's own share. A
    self-check counts only clusters of improbable size or tightness (or over
    the limit): conflicting labels alone are the conflict expectation's,
    judged against chance."""

    limit_keys: ClassVar[tuple[str, ...]] = SHARE_LIMITS
    success_keys = shared_success_keys(*SIGNAL_KEYS, *SHARE_LIMITS)
    renderer_template = ("Share of rows inside suspicious near-duplicate clusters (improbable size at "
                         "$size_alpha, conflicting labels, or over $max_cluster_size rows) must be at most "
                         "$max_share; against a reference, at most $max_excess_over_reference above the "
                         "reference's share (alpha $alpha)."
                         + GATE_SENTENCE)
    renderer_params = ("size_alpha", "max_cluster_size", "max_share", "max_excess_over_reference", "alpha",
                       *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        s = result.summary
        ref = s["reference"]
        # a self-check counts only the clusters improbable under the clean size model (score_fitted)
        counted = s["suspicious_rows"] if ref else s.get("improbable_rows", s["suspicious_rows"])
        share = counted / result.n_rows if result.n_rows and counted is not None else 0.0  # None: Spark
        details = {**self._base_details(result), "suspicious_clusters": s["suspicious_clusters"],
                   "suspicious_rows": s["suspicious_rows"], "counted_rows": counted,
                   "cluster_summaries": self._clusters(result, lambda c: c["suspicious"])}
        verdict = self.verdict(result)
        if verdict is not None:
            return self.verdict_result(result, verdict, runtime_configuration, details)
        success, gate = judge_rate(self, counted, result.n_rows,
                                   (ref["suspicious_rows"], ref["rows"]) if ref else None, self.max_share)
        success = success or not self.judges(result)
        if gate is not None:
            details["reference_gate"] = gate
        return self.build_result(success=success, observed_value=share, flags=result.flags, result=result,
                                 runtime_configuration=runtime_configuration, details=details)


class ExpectLargestNearDuplicateClusterToBeAtMost(_NearDuplicateExpectation):
    """The largest near-duplicate cluster holds at most `max_cluster_size`
    rows; with max_cluster_size null, at most the largest size that the
    clean cluster-size model (fitted on the reference when given) does not
    call improbable at `size_alpha`."""

    limit_keys: ClassVar[tuple[str, ...]] = ("max_cluster_size", "size_alpha")
    success_keys = shared_success_keys(*SIGNAL_KEYS)
    renderer_template = ("The largest near-duplicate cluster (rows within the radius of one another) must hold "
                         "at most $max_cluster_size rows (null: the largest size not improbable at "
                         "$size_alpha under the clean cluster-size model).")
    renderer_params = ("max_cluster_size", "size_alpha")

    def gates_against_reference(self) -> bool:
        """With a reference the family's gate is the density test of the share
        expectation; a configured max_cluster_size is still a hard rule."""
        return self.max_cluster_size is not None

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        s = result.summary
        if s["clusters"] is None:
            return self._without_clusters(result, runtime_configuration)
        limit = s["allowed_cluster_size"]  # max_cluster_size, else the size model's limit
        sizes = result.cluster_sizes
        flags = self._cluster_rows(result, sizes > limit)
        details = {**self._base_details(result), "allowed_cluster_size": int(limit),
                   "clusters_over_limit": int((sizes > limit).sum()),
                   "cluster_summaries": self._clusters(result, lambda c: c["size"] > limit)}
        success = s["largest_cluster"] <= limit or not self.judges(result)
        out = self.build_result(success=success, observed_value=s["largest_cluster"],
                                flags=flags, result=result, runtime_configuration=runtime_configuration,
                                details=details)
        # show the limit in force (the model's when max_cluster_size is null)
        out["result"]["details"]["limit"] = {"max_cluster_size": int(limit), "size_alpha": self.size_alpha,
                                             "limit_from": "config" if self.max_cluster_size is not None
                                             else "size model"}
        return out


class ExpectConflictingNearDuplicateClustersToBeAtMost(_NearDuplicateExpectation,
                                                       family_fields(NEAR_DUPLICATES, *CONFLICT_LIMITS,
                                                                     signal=False)):
    """At most `max_conflicting_clusters` near-duplicate clusters carry two or
    more labels beyond those expected by chance: the (1 - alpha) Poisson
    quantile of the expected count, from the nearest-neighbour label
    disagreement of the reference (or of the batch without one)."""

    limit_keys: ClassVar[tuple[str, ...]] = CONFLICT_LIMITS
    success_keys = shared_success_keys(*SIGNAL_KEYS, *CONFLICT_LIMITS)
    renderer_template = ("At most $max_conflicting_clusters near-duplicate clusters with conflicting labels in "
                         "$label_column beyond those expected by chance (Poisson, alpha $alpha), counting "
                         "batch rows that near-copy reference rows with another label.")
    renderer_params = ("max_conflicting_clusters", "label_column", "alpha")

    def gates_against_reference(self) -> bool:
        """With a reference, conflicting labels are the label-consistency gate's
        (row p-values, stated false-alarm rate); this reports them."""
        return False

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        result = self.signal_result(metrics)
        s = result.summary
        if s["clusters"] is None:
            return self._without_clusters(result, runtime_configuration)
        by_chance = chance_allowance(s["expected_conflicting_clusters"], self.alpha)
        allowed = self.max_conflicting_clusters + by_chance
        flags = self._cluster_rows(result, result.cluster_conflicting)
        details = {**self._base_details(result), "expected_by_chance": s["expected_conflicting_clusters"],
                   "allowed_by_chance": by_chance, "allowed": allowed,
                   "nearest_label_disagreement": s["nearest_label_disagreement"],
                   "conflicting_rows": s["conflicting_rows"],
                   "cluster_summaries": self._clusters(result, lambda c: c["conflicting_labels"])}
        return self.build_result(success=s["conflicting_clusters"] <= allowed or not self.judges(result),
                                 observed_value=s["conflicting_clusters"], flags=flags, result=result,
                                 runtime_configuration=runtime_configuration, details=details)


def chance_allowance(expected: float, alpha: float) -> int:
    """Conflicting clusters chance alone exceeds with probability below alpha."""
    return int(stats.poisson.ppf(1.0 - alpha, expected)) if expected > 0 else 0


# -- config family -------------------------------------------------------------

def _build(section: dict, shared: dict) -> list:
    signal = {key: section[key] for key in SIGNAL_KEYS}
    return [
        ExpectNearDuplicateClusterShareToBeAtMost(**shared, **signal, **{k: section[k] for k in SHARE_LIMITS}),
        ExpectLargestNearDuplicateClusterToBeAtMost(**shared, **signal),
        ExpectConflictingNearDuplicateClustersToBeAtMost(**shared, **signal,
                                                         **{k: section[k] for k in CONFLICT_LIMITS}),
    ]


def _calibrate(section: dict, results: dict) -> dict:
    """Limits from a run on trusted data: the 99.9% Clopper-Pearson upper bound of
    the share the self-check gate counts, and its conflicting clusters beyond chance."""
    result = results.get("near_duplicate")
    if result is None:
        return {}
    s = result.summary
    counted = s.get("improbable_rows", s["suspicious_rows"])
    share = clopper_pearson_upper(counted, result.n_rows, 1.0 - section["alpha"])
    beyond = s["conflicting_clusters"] - chance_allowance(s["expected_conflicting_clusters"], section["alpha"])
    return {"max_share": float(min(1.0, max(section["max_share"], share))),
            "max_conflicting_clusters": int(max(section["max_conflicting_clusters"], beyond))}


register_family(ExpectationFamily(
    declaration=NEAR_DUPLICATES,
    build=_build,
    calibrate=_calibrate,
))
