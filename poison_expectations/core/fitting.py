"""Fitting a profile: every signal fitted once on a trusted table."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from poison_expectations.core.analysis import build_analysis, ordered_by_inputs
from poison_expectations.core.cost import Deadline, ensure_time, estimate, shape_of
from poison_expectations.core.profile import FORMAT, FORMAT_VERSION, Profile, column_kind, content_hash
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.tables import Options, Roles


def fit_profile(frame: pd.DataFrame, roles: Roles, options: Options, signals: list[Signal], *,
                meta: dict[str, Any], progress: Callable[[str], Any] | None = None,
                max_memory_mb: int | None = None, deadline: Deadline | None = None) -> Profile:
    """Fit every signal on the trusted table once. The trusted rows are
    cross-fitted exactly as in a self-check (so each row's stored score is
    out of sample), and each signal's self-check result is summarised.
    `deadline` (limits.max_seconds): the estimate is checked before the
    first fit, the clock before each."""
    analysis = build_analysis(frame, roles, options, max_memory_mb=max_memory_mb)
    analysis.progress = progress
    analysis.fits_profile = True
    if deadline is not None and deadline.max_seconds is not None:
        ensure_time(estimate(shape_of(analysis), signals), deadline.elapsed, deadline.max_seconds)
    results: dict[str, SignalResult] = {}
    for signal in ordered_by_inputs(signals):
        if deadline is not None:
            deadline.check(signal.name)
        results.setdefault(signal.name, analysis.result(signal))
    features = analysis.encoder.columns
    meta = {
        **meta,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "roles": {"label_column": roles.label_column, "id_column": roles.id_column,
                  "source_column": roles.source_column, "feature_columns": list(features),
                  "embedding_columns": list(roles.embedding_columns) or None},
        "options": {"nan_policy": options.nan_policy, "max_onehot_categories": options.max_onehot_categories,
                    "k": options.k, "exact_max_rows": options.exact_max_rows,
                    "random_state": options.random_state},
        "schema": [[str(c), column_kind(frame[c])] for c in frame.columns],
        "rows": int(len(frame)),
        "data_sha256": content_hash(frame),
    }
    batch = analysis.batch
    batch.frame = None
    return Profile(
        meta=meta, encoder=analysis.encoder, classes=analysis.classes, table=batch,
        index=analysis.index_batch(), graphs=analysis.self_graphs(), states=dict(analysis.states),
        fitted_results={name: {"rows": r.n_rows, "flagged": r.flagged_count, "flagged_rate": r.flagged_rate}
                        for name, r in results.items()},
    )
