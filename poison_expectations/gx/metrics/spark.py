"""SparkDFExecutionEngine implementations of the per-row signal metrics
(label consistency, outliers, influence), so their expectations run in a GX
checkpoint on a Spark dataframe asset (`context.data_sources.add_spark`).

Each is a second `@metric_value(engine=SparkDFExecutionEngine)` on a
subclass of the pandas metric (same metric name: GX keeps one provider per
engine). `poison.analysis` gets a Spark implementation that only hands the
DataFrame and the value keys on; each signal metric then scores the rows
with `mapInPandas` against the profile or reference
(`engines/spark/signal_result.py`: the driver collects id, score and flag per
row, not the table). A self-check (neither profile nor reference) and the
batch-structure families are not available on Spark. Importing this module
registers them; pyspark is needed only when a Spark batch is validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.metrics.metric_provider import metric_value

from poison_expectations.gx.metrics.base import PoisonAnalysisMetric, options_from, roles_from
from poison_expectations.gx.metrics.influence import InfluenceMetric
from poison_expectations.gx.metrics.label_consistency import LabelConsistencyMetric
from poison_expectations.gx.metrics.outliers import OutlierMetric


@dataclass
class SparkBatch:
    """What `poison.analysis` is on Spark: the DataFrame and the run's value keys."""

    frame: Any
    kwargs: dict


class SparkAnalysisMetric(PoisonAnalysisMetric):
    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        return SparkBatch(frame, dict(metric_value_kwargs))


def _signal_result(cls, metric_value_kwargs, metrics):
    from poison_expectations.engines.spark.signal_result import spark_signal_result

    batch = metrics[PoisonAnalysisMetric.metric_name]
    kwargs = batch.kwargs
    return spark_signal_result(batch.frame, cls.make_signal(metric_value_kwargs), roles_from(kwargs),
                               options_from(kwargs), profile=kwargs.get("profile"), reference=kwargs.get("reference"))


class LabelConsistencySparkMetric(LabelConsistencyMetric):
    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        return _signal_result(cls, metric_value_kwargs, metrics)


class OutlierSparkMetric(OutlierMetric):
    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        return _signal_result(cls, metric_value_kwargs, metrics)


class InfluenceSparkMetric(InfluenceMetric):
    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        return _signal_result(cls, metric_value_kwargs, metrics)
