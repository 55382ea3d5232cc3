"""Run the project's full default checkpoint on a frame, the way a user would.

Generic over signals: whatever families are registered run with their
packaged defaults, and every ``<signal>_score`` column of the findings is
returned, so signals merged later show up without changes here.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from poison_expectations.core.config import load_config
from poison_expectations.gx.runner import run_validation

from .cases import ID, LABEL, SOURCE


def config_for(frame: pd.DataFrame, *, embedding_columns: list[str] | None = None) -> dict:
    overrides = {"data.label_column": LABEL}
    if ID in frame.columns:
        overrides["data.id_column"] = ID
    if SOURCE in frame.columns:
        overrides["data.source_column"] = SOURCE
    if embedding_columns:
        overrides["data.embedding_columns"] = list(embedding_columns)
    return load_config(None, overrides)


def signal_columns(findings: pd.DataFrame) -> list[str]:
    return [c for c in findings.columns if c.endswith("_score") and c != "poison_score"]


def run_ours(frame: pd.DataFrame, reference: pd.DataFrame | None = None, **config_kwargs) -> dict:
    """Verdict, row scores, flags, per-signal scores and timings of one run."""
    config = config_for(frame, **config_kwargs)
    start = time.perf_counter()
    # after_run=False: no reputation ledger is written (a benchmark must not fill the user's ledger,
    # and a ledger carried from case to case would fail later cases on reputation)
    outcome = run_validation(frame, config, reference=reference, after_run=False)
    wall = time.perf_counter() - start
    findings = outcome.findings
    return {
        "success": bool(outcome.success),
        "failed": outcome.failed_expectations(),
        "scores": findings["poison_score"].to_numpy(dtype=float),
        "flags": findings["flagged"].to_numpy(dtype=bool),
        "signal_scores": {c[: -len("_score")]: findings[c].to_numpy(dtype=float) for c in signal_columns(findings)},
        "signal_flags": {name: np.asarray(r.flags, dtype=bool) for name, r in outcome.results.items()},
        "timings": {k: round(float(v), 3) for k, v in outcome.timings.items()},
        "wall_s": wall,
    }
