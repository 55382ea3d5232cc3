"""Label-consistency expectations: batch-level rate and a row-level variant."""

from __future__ import annotations

import math
from typing import ClassVar

from great_expectations.expectations.expectation import MulticolumnMapExpectation

from poison_expectations.core.gates import calibrated_rate_limit, dispersion_index
from poison_expectations.core.params import LABEL_CONSISTENCY
from poison_expectations.core.registry import ExpectationFamily, register_family
from poison_expectations.core.signals.label_consistency import LabelConsistency
from poison_expectations.gx.expectations.base import (GATE_PARAMS, GATE_SENTENCE, ExplicitParams,
                                                      PoisonBatchExpectation, PoisonRendering, shared_success_keys)
from poison_expectations.gx.expectations.fields import declared_fields, family_fields, shared_fields
from poison_expectations.gx.metrics.label_consistency import LabelConsistencyMetric
from poison_expectations.gx.metrics.row_flags import RowFlagCondition
from poison_expectations.gx.expectations.rate_gate import rate_result


LIMITS = ("max_rate", "max_excess_over_reference", "alpha")


class ExpectLabelInconsistencyRateToBeAtMost(PoisonBatchExpectation, family_fields(LABEL_CONSISTENCY, *LIMITS)):
    """The share of rows whose label disagrees with their neighbours and an
    out-of-fold model is at most `max_rate`; with a reference, the batch's
    rate is not significantly (alpha) and materially (max_excess_over_reference)
    above the reference's own rate."""

    metric_class: ClassVar[type] = LabelConsistencyMetric
    metric_dependencies = (LabelConsistencyMetric.metric_name,)
    limit_keys: ClassVar[tuple[str, ...]] = LIMITS
    success_keys = shared_success_keys(*LABEL_CONSISTENCY.signal_keys, *LIMITS)
    renderer_template = ("Share of rows whose label (column $label_column) disagrees with its $k nearest neighbours "
                         "and an out-of-fold model (method $method) must be at most $max_rate in a self-check."
                         + GATE_SENTENCE)
    renderer_params = ("label_column", "k", "method", "max_rate", *GATE_PARAMS)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return rate_result(self, self.signal_result(metrics), runtime_configuration, {"method": self.method})


# -- row-level variant -----------------------------------------------------------

class RowLabelConsistent(RowFlagCondition):
    """True for rows whose label is consistent (column_list = features + label)."""

    condition_metric_name = "poison.row_label_consistent"
    family_metric = LabelConsistencyMetric


ROW_SHARED = ("id_column", "reference", "profile", "k", "random_state", "fdr_q", "nan_policy",
              "max_onehot_categories", "exact_max_rows")


class ExpectRowLabelsToBeConsistent(ExplicitParams, PoisonRendering, MulticolumnMapExpectation,
                                    declared_fields("RowLabelFields", {"method": LABEL_CONSISTENCY["method"]}),
                                    shared_fields(*ROW_SHARED)):
    """Each row's label (one of `column_list`) agrees with its neighbourhood
    and an out-of-fold model; GX lists the rows that do not, so
    `unexpected_index_column_names` reports their ids. Against a `profile`
    or `reference` a row fails when it is flagged at FDR `fdr_q` (its
    conformal p-value, Benjamini-Hochberg over the batch), as the batch
    expectation flags it; on a Spark dataframe asset that is required, with
    `id_column` (gx/metrics/row_flags.py).

    `mostly` defaults to 0.9, not GX's 1.0: even a clean table has rows whose
    label disagrees with its neighbours (natural label noise, class overlap;
    2.5% of the sample reference, up to 13% on the noisy tables in
    docs/user_outputs.md), so 1.0 fails every real table. 0.9 is 1 minus the
    batch expectation's self-check `max_rate` (0.1), so both expectations
    draw the same line on the same table; calibrate it like max_rate."""

    label_column: str  # required here: the row-level check needs the label
    mostly: float = 0.9

    map_metric = RowLabelConsistent.condition_metric_name
    success_keys = ("mostly", "label_column", "method", *ROW_SHARED)
    renderer_template: ClassVar[str] = ("Each row's label (column $label_column) must agree with its $k nearest "
                                        "neighbours and an out-of-fold model (method $method), for at least $mostly "
                                        "of the rows.")
    renderer_params: ClassVar[tuple[str, ...]] = ("label_column", "k", "method", "mostly")


# -- config family -------------------------------------------------------------

def _build(section: dict, shared: dict) -> list:
    params = {k: v for k, v in section.items() if k != "enabled"}
    return [ExpectLabelInconsistencyRateToBeAtMost(**shared, **params)]


def _calibrate(section: dict, results) -> dict:
    """max_rate for clean batches of `results.batch_rows` rows: the flagged
    counts of trusted batches of that size (pooled; their dispersion), the
    Clopper-Pearson upper bound of the rate, then the count's upper quantile
    (`gates.calibrated_rate_limit`, both at the run's confidence, 0.999 by
    default), rounded up to 4 decimals. The reference-mode keys stay: that
    gate measures the reference's own rate at every run."""
    result = results.get(LabelConsistency.name)
    if result is None:
        return {}
    batches = (getattr(results, "batches", None) or {}).get(LabelConsistency.name) or [result]
    counts = [b.flagged_count for b in batches]
    sizes = [b.n_rows for b in batches]
    batch_rows = getattr(results, "batch_rows", None) or result.n_rows
    limit = calibrated_rate_limit(sum(counts), sum(sizes), batch_rows, getattr(results, "confidence", 0.999),
                                  dispersion=dispersion_index(counts, sizes))
    return {"max_rate": min(1.0, math.ceil(limit * 10_000) / 10_000)}


register_family(ExpectationFamily(
    declaration=LABEL_CONSISTENCY,
    build=_build,
    calibrate=_calibrate,
))
