"""Thin GX metric providers: fetch the batch, call a signal, return its result.

Every poison metric shares the same value keys for the data roles, the
trusted side and the feature/neighbour options, and depends on one shared
metric, `poison.analysis`, that prepares the batch's `Analysis` once per
validation run (GX computes each metric once per run): the runner's active
analysis when it is this batch, else a new one. Signal metrics return the
`SignalResult` object itself.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider
from great_expectations.validator.metric_configuration import MetricConfiguration

from poison_expectations.core.analysis import Analysis, Options, Roles, build_analysis
from poison_expectations.core.context import matching, remember
from poison_expectations.core.params import EXPECTATION_KEYS
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.gx.metrics.requests import note, requests_for
from poison_expectations.stores.references import load_trusted

# Keys every poison expectation passes to its metric (and so lists in success_keys).
SHARED_KEYS: tuple[str, ...] = tuple(EXPECTATION_KEYS)


def roles_from(kwargs: dict[str, Any]) -> Roles:
    features = kwargs.get("feature_columns")
    return Roles(
        label_column=kwargs.get("label_column"),
        id_column=kwargs.get("id_column"),
        source_column=kwargs.get("source_column"),
        feature_columns=tuple(features) if features else None,
        embedding_columns=tuple(kwargs.get("embedding_columns") or ()),
    )


def options_from(kwargs: dict[str, Any]) -> Options:
    defaults = Options()
    return Options(
        nan_policy=kwargs.get("nan_policy") or defaults.nan_policy,
        max_onehot_categories=int(kwargs.get("max_onehot_categories") or defaults.max_onehot_categories),
        k=int(kwargs.get("k") or defaults.k),
        exact_max_rows=int(kwargs.get("exact_max_rows") if kwargs.get("exact_max_rows") is not None
                           else defaults.exact_max_rows),
        random_state=int(kwargs.get("random_state") or 0),
        fdr_q=float(kwargs.get("fdr_q") or defaults.fdr_q),
    )


def trusted_name(kwargs: dict[str, Any]) -> str | None:
    """What the batch is judged against: "profile:PATH" or "reference:NAME"
    (with the file's size and modification time, so an analysis prepared
    against an older copy of the file is never reused), or None."""
    kind, name = ("profile", kwargs.get("profile")) if kwargs.get("profile") else ("reference", kwargs.get("reference"))
    if not name:
        return None
    try:
        stat = os.stat(name)
        return f"{kind}:{name}@{stat.st_mtime_ns}:{stat.st_size}"
    except OSError:  # a registered in-memory reference, or a missing file (reported when loaded)
        return f"{kind}:{name}"


def analysis_for(frame, kwargs: dict[str, Any], *, keep: bool = True) -> Analysis:
    """The run's analysis of this batch: the active one if it matches, else a
    new one, kept as the context's latest (for the quarantine action) unless
    `keep` is False (an analysis of some of the batch's columns)."""
    from poison_expectations.gx.paths import project_path

    roles, options, trusted = roles_from(kwargs), options_from(kwargs), trusted_name(kwargs)
    active = matching(frame, roles, options, trusted)
    if active is not None:
        return active
    # a stored suite's relative paths mean "in the GX project" during run-checkpoint (gx/paths.py)
    reference, profile = load_trusted(project_path(kwargs.get("reference")), project_path(kwargs.get("profile")))
    analysis = build_analysis(frame, roles, options, reference, profile=profile)
    if keep:
        remember(analysis, trusted)
    return analysis


class PoisonAnalysisMetric(TableMetricProvider):
    """The batch prepared once per validation run, shared by every signal metric."""

    metric_name = "poison.analysis"
    value_keys = SHARED_KEYS

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics,
                runtime_configuration):
        frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs,
                                                          domain_type=MetricDomainTypes.TABLE)
        entry = requests_for(execution_engine, metric_domain_kwargs, metric_value_kwargs)
        if entry is not None:
            entry.resolved = True
        return analysis_for(frame, metric_value_kwargs)


class PoisonSignalMetric(TableMetricProvider):
    """Subclasses set metric_name and `signal_class`; `signal_keys` are the
    signal's declared parameters (`signal_class.declaration`) and the
    value_keys SHARED_KEYS + signal_keys."""

    signal_class: ClassVar[type[Signal]]
    signal_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # runs inside class creation, before GX's metaclass registers the metric and its value_keys
        cls.signal_keys = cls.signal_class.declaration.signal_keys
        cls.value_keys = SHARED_KEYS + cls.signal_keys
        super().__init_subclass__(**kwargs)

    @classmethod
    def make_signal(cls, kwargs: dict[str, Any]) -> Signal:
        """The signal with every key the expectation set. None keeps the
        declared default (core/params). The shared `k` and `random_state` go
        to signals that take them."""
        keys = cls.signal_keys + tuple(cls.signal_class.declaration.shared)
        return cls.signal_class(**{key: kwargs[key] for key in keys if kwargs.get(key) is not None})

    @classmethod
    def _get_evaluation_dependencies(cls, metric: MetricConfiguration, configuration=None, execution_engine=None,
                                     runtime_configuration=None):
        dependencies = super()._get_evaluation_dependencies(metric, configuration, execution_engine,
                                                            runtime_configuration)
        shared = {key: metric.metric_value_kwargs.get(key) for key in SHARED_KEYS}
        analysis = MetricConfiguration(PoisonAnalysisMetric.metric_name, metric.metric_domain_kwargs, shared)
        dependencies[PoisonAnalysisMetric.metric_name] = analysis
        if execution_engine is not None:
            note(execution_engine, cls, metric, analysis)  # before any metric runs (gx/metrics/requests.py)
        return dependencies

    @classmethod
    def result(cls, analysis: Analysis, signal: Signal) -> SignalResult:
        """The signal's result on the run's analysis (computed once). Metrics
        whose signal reads other results compute those first (see sources)."""
        return analysis.result(signal)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics,
                runtime_configuration):
        return cls.result(metrics[PoisonAnalysisMetric.metric_name], cls.make_signal(metric_value_kwargs))
