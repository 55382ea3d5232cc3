"""GX metric for the per-source statistics (aggregates the other signals' flags).

The signal only reads results already computed on the batch (its `inputs`
are "*"); this metric first computes the inputs it names with their default
parameters (`SourceStatistics.required_inputs`) and, for "*", every family
the validation requests of the batch (gx/metrics/requests.py), so a
hand-built GX suite gives the same result in any metric order. Signals are found by name among the registered
GX metrics (every family's metric registers when its expectation module is
imported), never by importing a signal module for its side effect.
"""

from __future__ import annotations

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.metrics.metric_provider import metric_value

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.sources import ALL
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.sources import SourceStatistics
from poison_expectations.gx.metrics.base import PoisonAnalysisMetric, PoisonSignalMetric
from poison_expectations.gx.metrics.requests import requests_for


class SourceStatisticsMetric(PoisonSignalMetric):
    metric_name = "poison.sources"
    signal_class = SourceStatistics

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics,
                runtime_configuration):
        """With signals ["*"], every poison family this validation requests of
        the batch is computed first (in metric-id order), so "*" means the
        suite's families whatever order GX resolves the metrics in."""
        analysis, signal = metrics[PoisonAnalysisMetric.metric_name], cls.make_signal(metric_value_kwargs)
        entry = requests_for(execution_engine, metric_domain_kwargs, metric_value_kwargs)
        if entry is not None and ALL in (signal.params["signals"] or ()):
            for _, (metric_class, kwargs) in sorted(entry.requests.items()):
                other = metric_class.make_signal(kwargs)
                if other.name != signal.name:
                    metric_class.result(analysis, other)
        return cls.result(analysis, signal)

    @classmethod
    def result(cls, analysis, signal: SourceStatistics) -> SignalResult:
        """The inputs `signal` names, computed with their defaults, then its result."""
        for name in signal.required_inputs(analysis):
            analysis.result(default_signal(name, analysis))
        return analysis.result(signal)


def metric_classes() -> dict[str, type[PoisonSignalMetric]]:
    """Every registered poison metric by the name of its signal."""
    from poison_expectations.gx import expectations  # noqa: F401  (importing registers every family's metric)

    found: dict[str, type[PoisonSignalMetric]] = {}
    todo = list(PoisonSignalMetric.__subclasses__())
    while todo:
        metric = todo.pop()
        todo.extend(metric.__subclasses__())
        found.setdefault(metric.signal_class.name, metric)
    return found


def default_signal(name: str, analysis) -> Signal:
    """Signal `name` with its default parameters and the run's k / random_state."""
    metrics = metric_classes()
    if name not in metrics:
        known = ", ".join(sorted(n for n in metrics if n != SourceStatistics.name)) or "none"
        raise InputError(f"sources: unknown signal {name!r} in 'signals' (known: {known})")
    return metrics[name].make_signal({"k": analysis.options.k, "random_state": analysis.options.random_state})
