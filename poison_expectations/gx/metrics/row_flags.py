"""Row-level conditions: a family's flags as a GX map condition, so a
`MulticolumnMapExpectation` lists the flagged rows and GX's
`unexpected_index_column_names` names their ids.

A subclass sets `condition_metric_name` and `family_metric` (the family's
`PoisonSignalMetric`); its value keys are that metric's. The feature columns
are the domain's `column_list` without the label and id columns.

* pandas: the family's result on the domain rows (the runner's analysis of
  them when it matches, else one built here), self-check or against the
  `profile` / `reference`; a row meets the condition unless flagged.
* Spark: the condition depends on the family metric computed on the whole
  table (its Spark implementation, `gx/metrics/spark.py`: read from one
  Spark engine run against the profile or reference; its value keys name
  the features, so it is a run of its own, of this family only), and is
  `NOT id IN (flagged ids)`: a Column GX can filter the domain with, so the
  count, `unexpected_index_list` and the query work as for GX's own map
  metrics. It needs `id_column` and a trusted side, and the driver holds the
  flagged ids (the result carries the flagged rows only).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)
from great_expectations.validator.metric_configuration import MetricConfiguration

from poison_expectations.core.errors import InputError
from poison_expectations.gx.metrics.base import PoisonSignalMetric, analysis_for

FAMILY_RESULT = "poison_family_result"  # the dependency's key in `metrics`


def feature_columns(column_list, kwargs: dict[str, Any]) -> list[str]:
    roles = {kwargs.get("label_column"), kwargs.get("id_column")}
    return [str(c) for c in column_list if c not in roles]


class RowFlagCondition(MulticolumnMapMetricProvider):
    """True for rows the family does not flag (abstract: subclasses set the names)."""

    family_metric: ClassVar[type[PoisonSignalMetric]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # inside class creation, before GX's metaclass registers the condition and its value keys
        cls.condition_value_keys = tuple(cls.family_metric.value_keys)
        super().__init_subclass__(**kwargs)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, _metrics=None, **kwargs):
        """None for a key keeps its declared default (core/params)."""
        keys = {**kwargs, "feature_columns": feature_columns(column_list.columns, kwargs), "id_column": None}
        # GX maps rows to ids itself (the frame's index); not kept as the context's latest analysis,
        # which the quarantine action reads for the whole batch
        analysis = analysis_for(column_list, keys, keep=False)
        result = analysis.result(cls.family_metric.make_signal(keys))
        return pd.Series(~result.flags, index=column_list.index)

    @multicolumn_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_list, _metrics=None, **kwargs):
        from pyspark.sql import functions as F

        result = _metrics[FAMILY_RESULT]
        flagged = result.ids[result.flags].tolist()
        name = kwargs["id_column"].replace("`", "``")
        return ~F.col(f"`{name}`").isin(flagged)  # quoted: a dot in the name is not a struct field

    @classmethod
    def _get_evaluation_dependencies(cls, metric: MetricConfiguration, configuration=None, execution_engine=None,
                                     runtime_configuration=None):
        dependencies = super()._get_evaluation_dependencies(metric, configuration, execution_engine,
                                                            runtime_configuration)
        if isinstance(execution_engine, SparkDFExecutionEngine) and metric.metric_name.endswith(".condition"):
            kwargs = dict(metric.metric_value_kwargs)
            if not kwargs.get("id_column"):
                raise InputError(f"{cls.condition_metric_name}: on Spark set id_column (the rows are named by it)")
            column_list = metric.metric_domain_kwargs.get("column_list") or []
            kwargs["feature_columns"] = feature_columns(column_list, kwargs)
            table = {k: v for k, v in metric.metric_domain_kwargs.items() if k not in ("column_list", "ignore_row_if")}
            dependencies[FAMILY_RESULT] = MetricConfiguration(
                cls.family_metric.metric_name, table, {k: kwargs.get(k) for k in cls.family_metric.value_keys})
        return dependencies
