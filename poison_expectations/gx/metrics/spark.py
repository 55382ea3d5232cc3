"""SparkDFExecutionEngine implementations of the poison metrics, so a GX
checkpoint on a Spark dataframe asset (`context.data_sources.add_spark`)
runs every family the Spark engine runs, in ONE engine run per batch.

* While GX builds the checkpoint's metric graph (before computing anything),
  each signal metric notes its request with the batch's `poison.analysis`
  (`gx/metrics/requests.py`: keyed by the engine, the batch and the shared
  value keys; on every engine).
* `poison.analysis` on Spark then runs the Spark engine once
  (`engines/spark/run.py: run_spark` on the DataFrame GX hands over) with a
  config naming exactly the registered families and parameters, reads every
  requested signal's result out of that one outcome (the flagged rows and the
  gate: `spark_results.py`), unpersists the engine's cached tables, and
  returns a `SparkRun`.
* Each signal metric (`register_spark_metrics`: the pandas metric with a
  second `@metric_value(engine=SparkDFExecutionEngine)`) looks its result up
  there, so an expectation costs nothing more, and the SAME expectation
  class decides on both engines: the run's alpha / F is the expectations'
  `gate_alpha`, and its gate reaches the expectation as the signal's
  `batch_test`.

A family the Spark engine does not run (not in `ON_SPARK`, or skipped by
the run: a profile fitted without it, collisions in a self-check) fails its
expectation with one line (GX records it as the expectation's exception,
the checkpoint fails): a suite is a contract, and an expectation that was
not evaluated must not pass. A family that lands on
the engine is wired by adding its config section to `ON_SPARK` (its outcome
gate and columns are read by `spark_results.READERS`, or as a p-value gated
family by default). The row-level expectation's Spark condition reads the
same results (`gx/metrics/row_flags.py`).

GX retries a failing metric 3 times and recomputes every metric of a failed
round, so the run (or its error) is kept with the requests until the next
graph build. pyspark is needed only when a Spark batch is validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.metrics.metric_provider import metric_value

from poison_expectations.core.errors import InputError
from poison_expectations.core.params import EXPECTATION_KEYS, FAMILIES
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.engines.spark.params import BATCH_SECTIONS
from poison_expectations.engines.spark.scoring import BATCH_SIGNALS, GROUP_SIGNALS, PER_ROW_SIGNALS
from poison_expectations.gx.metrics.base import PoisonAnalysisMetric, PoisonSignalMetric
from poison_expectations.gx.metrics.requests import Request, requests_for

# config sections whose families the Spark engine runs
ON_SPARK = frozenset(PER_ROW_SIGNALS) | frozenset(GROUP_SIGNALS) | frozenset(BATCH_SIGNALS) | frozenset(BATCH_SECTIONS)
CARRIER = "outliers"  # the per-row family run when a suite asks for none (the engine scores with one)


@dataclass
class SparkRun:
    """What `poison.analysis` is on Spark: each requested signal's result (or error), by cache key."""

    results: dict[tuple, SignalResult | Exception] = field(default_factory=dict)
    rows: int = 0
    mode: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def result(self, signal: Signal) -> SignalResult:
        found = self.results.get(signal.cache_key())
        if found is None:
            raise InputError(f"{signal.name}: not requested from the Spark run of this batch")
        if isinstance(found, Exception):
            raise found
        return found


class SparkAnalysisMetric(PoisonAnalysisMetric):
    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        entry = requests_for(execution_engine, metric_domain_kwargs, metric_value_kwargs)
        if entry is None:
            raise InputError("poison.analysis on Spark: no poison metric of this batch was registered")
        if entry.outcome is None:  # the run, or its error, kept for GX's retries and recomputed rounds
            entry.resolved = True
            frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs,
                                                              domain_type=MetricDomainTypes.TABLE)
            try:
                entry.outcome = run_batch(frame, dict(metric_value_kwargs), list(entry.requests.values()))
            except Exception as exc:  # noqa: BLE001 - re-raised as it is, now and on every retry
                entry.outcome = exc
        if isinstance(entry.outcome, Exception):
            raise entry.outcome
        return entry.outcome


def requested_signals(requests: list[Request]) -> tuple[dict[str, Signal], dict[tuple, Exception]]:
    """(config section -> the signal the engine runs, cache key -> error of a signal it cannot give)."""
    chosen: dict[str, Signal] = {}
    errors: dict[tuple, Exception] = {}
    for metric_class, kwargs in requests:
        signal = metric_class.make_signal(kwargs)
        section = signal.declaration.section if signal.declaration else signal.name
        if section not in ON_SPARK:
            errors[signal.cache_key()] = not_on_spark(signal.name)
        elif chosen.setdefault(section, signal).cache_key() != signal.cache_key():
            errors[signal.cache_key()] = InputError(
                f"{signal.name}: the Spark run of a batch takes one parameter set per family, and this suite "
                f"asks for two ({chosen[section].params} and {signal.params})")
    return chosen, errors


def run_batch(frame, shared: dict, requests: list[Request]) -> SparkRun:
    """Run the engine once on `frame` for the requested families; every result read, the cache released."""
    from poison_expectations.engines.spark.run import run_spark
    from poison_expectations.gx.metrics.spark_results import results_from

    chosen, errors = requested_signals(requests)
    run = SparkRun(dict(errors))
    if not chosen:
        return run
    if not (shared.get("profile") or shared.get("reference")):
        raise InputError("the Spark implementation needs a trusted side: set `profile` (poison-check fit) "
                         "or `reference`")
    config = run_config(shared, chosen)
    outcome = run_spark(frame.sparkSession, frame, config)
    try:
        found = results_from(outcome, {s.name: s for s in chosen.values()}, config["verdicts"]["q"])
    finally:
        outcome.release()  # the results hold the flagged rows; nothing reads the scored table again
    run.results.update({signal.cache_key(): found[signal.name] for signal in chosen.values()})
    run.rows, run.mode, run.timings = outcome.rows, outcome.mode, dict(outcome.timings)
    return run


def run_config(shared: dict, chosen: dict[str, Signal]) -> dict:
    """The engine's config: the shared keys, the chosen families with their
    parameters (plus what sources read and a per-row family to score with),
    and alpha = gate_alpha x F, so each gate of the run is at `gate_alpha`."""
    from poison_expectations.core.config import load_config
    from poison_expectations.engines.spark.run import gate_count
    from poison_expectations.gx.paths import project_path

    sections = {section: dict(signal.params) for section, signal in chosen.items()}
    labelled = shared.get("label_column") is not None
    for section in input_sections(chosen.get("sources"), labelled):
        sections.setdefault(section, {})
    if not set(sections) & set(PER_ROW_SIGNALS):
        section, params = carrier(shared.get("profile") and project_path(shared["profile"]), labelled)
        sections[section] = params
    overrides: dict[str, Any] = {f"expectations.{f.section}.enabled": f.section in sections for f in FAMILIES}
    for family in FAMILIES:
        for key in family.signal_keys:
            if key in sections.get(family.section, {}):
                overrides[f"expectations.{family.section}.{key}"] = sections[family.section][key]
    for key, path in EXPECTATION_KEYS.items():
        if key != "gate_alpha" and shared.get(key) is not None:
            value = project_path(shared[key]) if key in ("profile", "reference") else shared[key]
            overrides[".".join(path)] = value
    config = load_config(None, overrides)
    if shared.get("gate_alpha") is not None:
        config["verdicts"]["alpha"] = float(shared["gate_alpha"]) * gate_count(config)
    return config


def carrier(profile: str | None, labelled: bool) -> tuple[str, dict]:
    """(section, parameters) of a per-row family to score with when the suite
    asks for none (the engine's batch families work on its scored table): one
    the profile was fitted with, with its fitted parameters, else outliers."""
    if profile:
        from poison_expectations.stores.profiles import read_manifest

        fitted = read_manifest(profile).get("config", {}).get("expectations", {})
        for family in FAMILIES:
            section = fitted.get(family.section) or {}
            if family.section in PER_ROW_SIGNALS and section.get("enabled") and (labelled or not family.needs_label):
                return family.section, {k: section[k] for k in family.signal_keys if k in section}
    return CARRIER, {}


def input_sections(sources: Signal | None, labelled: bool) -> list[str]:
    """Config sections of the signals the sources test reads (as its pandas metric computes them)."""
    if sources is None:
        return []
    from poison_expectations.core.params.sources import ALL
    from poison_expectations.gx.metrics.sources import metric_classes

    wanted = sources.params.get("signals")
    names = (["label_consistency"] if labelled else []) if wanted is None else [n for n in wanted if n != ALL]
    skip = set(sources.params.get("exclude_signals") or ())
    metrics = metric_classes()
    out = []
    for name in names:
        declaration = metrics[name].signal_class.declaration if name in metrics else None
        if name not in skip and declaration is not None and declaration.section in ON_SPARK:
            out.append(declaration.section)
    return out


def not_on_spark(signal_name: str) -> InputError:
    on_spark = ", ".join(sorted(ON_SPARK))
    return InputError(f"{signal_name}: not available on Spark yet (the Spark engine runs {on_spark}); "
                      "validate this expectation on a pandas batch, or remove it from the Spark suite")


class SparkSignalMetric:
    """Mixin of a signal metric's Spark provider: read the signal's result from
    the batch's one engine run (the metric noted its request while GX built
    the graph: gx/metrics/base.py)."""

    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        return metrics[PoisonAnalysisMetric.metric_name].result(cls.make_signal(metric_value_kwargs))


def with_spark(metric: type[PoisonSignalMetric]) -> type[PoisonSignalMetric]:
    """A subclass of `metric` that also has the Spark implementation (registered with GX on creation)."""
    return type(f"{metric.__name__}OnSpark", (SparkSignalMetric, metric), {"__module__": __name__})


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
    return {name: metric if issubclass(metric, SparkSignalMetric) else with_spark(metric)
            for name, metric in leaves.items()}


SPARK_METRICS = register_spark_metrics()
