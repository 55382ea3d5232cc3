"""What the poison metrics of one validation ask of a batch, noted while GX
builds the metric graph, before any metric is computed.

Two readers need the whole set, not the metrics GX happened to resolve so
far: the sources metric with `signals: ["*"]` computes every requested
family first (its inputs would otherwise depend on GX's resolution order:
the same suite named a flooded source in some runs and not in others), and
the Spark analysis metric runs the engine once for all of them.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from poison_expectations.core.params import EXPECTATION_KEYS

Request = tuple[Any, dict]  # a signal metric's class and its value kwargs


@dataclass
class BatchRequests:
    requests: dict[str, Request] = field(default_factory=dict)  # metric id -> request
    resolved: bool = False  # the batch's analysis was computed: the next note starts a new validation
    outcome: Any = None  # what the analysis metric made of them (Spark: the engine run, or its error)


# engine -> {batch key: its requests}; weak, so a finished validator's entries go with its engine
REQUESTS: "weakref.WeakKeyDictionary[Any, dict[tuple, BatchRequests]]" = weakref.WeakKeyDictionary()


def batch_key(domain_kwargs, value_kwargs) -> tuple:
    """One entry per batch and set of shared value keys (one `poison.analysis`)."""
    shared = {key: value_kwargs.get(key) for key in EXPECTATION_KEYS}
    return str(domain_kwargs.get("batch_id")), json.dumps(shared, sort_keys=True, default=str)


def note(engine, metric_class, metric, analysis) -> None:
    """`metric` (a MetricConfiguration of `metric_class`) will read `analysis`'s batch."""
    entries = REQUESTS.setdefault(engine, {})
    key = batch_key(analysis.metric_domain_kwargs, analysis.metric_value_kwargs)
    entry = entries.get(key)
    if entry is None or entry.resolved:
        entry = entries[key] = BatchRequests()
    entry.requests[str(metric.id)] = (metric_class, dict(metric.metric_value_kwargs))


def requests_for(engine, domain_kwargs, value_kwargs) -> BatchRequests | None:
    return REQUESTS.get(engine, {}).get(batch_key(domain_kwargs, value_kwargs))
