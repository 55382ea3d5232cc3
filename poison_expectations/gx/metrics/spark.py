"""SparkDFExecutionEngine implementations of the poison metrics, so a GX
checkpoint on a Spark dataframe asset (`context.data_sources.add_spark`)
runs the expectations of the families the Spark engine scores.

`poison.analysis` gets a Spark implementation that only hands the
DataFrame and the value keys on. Every signal metric then gets one too
(`register_spark_metrics`, run on import): a subclass of the pandas metric
with a second `@metric_value(engine=SparkDFExecutionEngine)` (same metric
name: GX keeps one provider per engine). It computes the signal's
`SignalResult` with the function `SPARK_RESULTS` names for the signal: for
the per-row families, `spark_signal_result` (mapInPandas against the
profile or reference; the driver collects id, score, p-value, group and
reason per row, not the table). A family that lands on the Spark engine is
wired with one line there. A family that has none fails its expectation
with one line saying so (GX records it as the expectation's exception, the
checkpoint fails): a suite is a contract, and an expectation that was not
evaluated must not pass. The row-level expectation's Spark condition reads
the same result (`gx/metrics/row_flags.py`).

pyspark is needed only when a Spark batch is validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.metrics.metric_provider import metric_value

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.base import SignalResult
from poison_expectations.engines.spark.scoring import PER_ROW_SIGNALS
from poison_expectations.gx.metrics.base import PoisonAnalysisMetric, PoisonSignalMetric, options_from, roles_from


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


def per_row_result(batch: SparkBatch, signal) -> SignalResult:
    """A per-row family's result: every row scored by mapInPandas against the trusted side."""
    from poison_expectations.engines.spark.signal_result import spark_signal_result

    kwargs = batch.kwargs
    return spark_signal_result(batch.frame, signal, roles_from(kwargs), options_from(kwargs),
                               profile=kwargs.get("profile"), reference=kwargs.get("reference"))


# signal name -> its result on a Spark batch: (SparkBatch, Signal) -> SignalResult. One line per family.
SPARK_RESULTS: dict[str, Callable[[SparkBatch, Any], SignalResult]] = {
    name: per_row_result for name, _, _ in PER_ROW_SIGNALS.values()}


def not_on_spark(signal_name: str) -> InputError:
    on_spark = ", ".join(sorted(SPARK_RESULTS)) or "none"
    return InputError(f"{signal_name}: not available on Spark yet (the Spark engine runs {on_spark}); "
                      "validate this expectation on a pandas batch, or remove it from the Spark suite")


def spark_result(cls: type[PoisonSignalMetric], metric_value_kwargs: dict, metrics: dict) -> SignalResult:
    """The metric's SignalResult on the Spark batch, or the one-line error of a family not on Spark."""
    compute = SPARK_RESULTS.get(cls.signal_class.name)
    if compute is None:
        raise not_on_spark(cls.signal_class.name)
    return compute(metrics[PoisonAnalysisMetric.metric_name], cls.make_signal(metric_value_kwargs))


def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
    return spark_result(cls, metric_value_kwargs, metrics)


def with_spark(metric: type[PoisonSignalMetric]) -> type[PoisonSignalMetric]:
    """A subclass of `metric` that also has the Spark implementation (registered with GX on creation)."""
    return type(f"{metric.__name__}OnSpark", (metric,),
                {"_spark": metric_value(engine=SparkDFExecutionEngine)(_spark), "__module__": __name__})


def register_spark_metrics() -> dict[str, type[PoisonSignalMetric]]:
    """Give each registered signal metric (its most derived class: the one GX
    registered last) a Spark implementation, once per metric name."""
    from poison_expectations.gx import expectations  # noqa: F401  (importing registers every family's metric)

    leaves: dict[str, type[PoisonSignalMetric]] = {}
    todo = list(PoisonSignalMetric.__subclasses__())
    while todo:
        metric = todo.pop()
        todo.extend(metric.__subclasses__())
        name = getattr(metric, "metric_name", None)
        if name and (name not in leaves or issubclass(metric, leaves[name])):
            leaves[name] = metric
    return {name: metric if "_spark" in vars(metric) else with_spark(metric) for name, metric in leaves.items()}


SPARK_METRICS = register_spark_metrics()
