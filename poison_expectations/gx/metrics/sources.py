"""GX metric for the per-source statistics (aggregates the other signals' flags).

The signal only reads results already computed on the batch (its `inputs`
are "*"); this metric first computes the inputs it names with their default
parameters (`SourceStatistics.required_inputs`), so a hand-built GX suite
works in any metric order. Signals are found by name among the registered
GX metrics (every family's metric registers when its expectation module is
imported), never by importing a signal module for its side effect.
"""

from __future__ import annotations

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.sources import SourceStatistics
from poison_expectations.gx.metrics.base import PoisonSignalMetric


class SourceStatisticsMetric(PoisonSignalMetric):
    metric_name = "poison.sources"
    signal_class = SourceStatistics

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
