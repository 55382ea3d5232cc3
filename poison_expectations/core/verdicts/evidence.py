"""Each signal's evidence against a batch row: its conformal p-value.

A signal scores a batch row (`Signal.batch_scores`) on the scale of its
state's `reference_scores` (every trusted row's own out-of-sample score);
the row's p-value ranks it among them (conformal.py), within the trusted
rows of its class when the signal is class-conditional
(`Signal.calibration == "class"`). Per signal, rows are then flagged by
Benjamini-Hochberg at the run's false discovery rate q, so a signal's flags
carry a stated error rate instead of a tuned cut.

Only against a reference or a profile: in a self-check the batch is its own
baseline, and ranking rows among themselves gives uniform p-values whatever
the batch holds, so the signal's own cuts stay in force there (README,
"What a self-check can and cannot tell").
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from .conformal import class_conditional_pvalues, conformal_pvalues
from .fdr import benjamini_hochberg
from .ranking import class_conditional_ranking, own_rank_pvalues, ranking_pvalues

# Signal, SignalResult and Analysis are duck-typed here: the core's analysis
# imports this module, so importing those back (even for types) is a cycle.


def signal_seed(random_state: int, name: str) -> list[int]:
    """A tie-breaking seed of its own per signal, stable across runs."""
    return [int(random_state), zlib.crc32(name.encode())]


def attach_evidence(signal: Any, state: Any, result: Any, analysis: Any) -> None:
    """Against a trusted side: set `result.pvalues` (unless the signal set its
    own) and `result.rank_pvalues` (what poison_score ranks by, ranking.py),
    and replace the signal's flags by BH at `analysis.options.fdr_q`."""
    if analysis.reference is None:
        return
    if result.pvalues is None:
        own = signal.batch_pvalues(state, analysis, result)
        if own is not None:
            result.pvalues, result.pvalue_groups, result.pvalue_blocks = own
        else:
            ranked = _conformal(signal, state, result, analysis)
            if ranked is None:
                return
            result.pvalues, result.pvalue_groups, result.rank_pvalues = ranked
    if result.rank_pvalues is None:
        result.rank_pvalues = own_rank_pvalues(result.pvalues, result.scores)
    if not signal.own_flags:
        flag_by_fdr(result, analysis.options.fdr_q)


def _conformal(signal, state, result, analysis):
    if signal.calibration is None or not isinstance(state, dict) or "reference_scores" not in state:
        return None
    reference = np.asarray(state["reference_scores"], dtype=np.float64)
    scores = np.asarray(signal.batch_scores(state, analysis, result), dtype=np.float64)
    scores = np.nan_to_num(scores, nan=0.0)
    reference = np.nan_to_num(reference, nan=0.0)
    seed = signal_seed(analysis.options.random_state, signal.name)
    fitted_y, batch_y = analysis.fitted.y, analysis.batch.y
    if signal.calibration == "class" and fitted_y is not None and batch_y is not None:
        ranked = class_conditional_pvalues(scores, batch_y, reference, fitted_y, seed=seed)
        rank = class_conditional_ranking(scores, batch_y, reference, fitted_y)
        return ranked.pvalues, (ranked.groups, ranked.group), rank
    p = conformal_pvalues(scores, reference, seed=seed)
    return p, (((len(reference), len(p)),), np.zeros(len(p), dtype=np.int64)), ranking_pvalues(scores, reference)


def flag_by_fdr(result: Any, q: float) -> None:
    """Flags = BH at q over the row p-values; a newly flagged row without a
    reason of the signal's own gets its p-value as the reason."""
    flags, _ = benjamini_hochberg(result.pvalues, q)
    reasons = np.where(flags, result.reasons, "").astype(object)
    for row in np.flatnonzero(flags & (reasons == "")):
        reasons[row] = f"{result.signal}: p = {result.pvalues[row]:.2g}"
    result.flags, result.reasons = flags, reasons
    result.summary["fdr"] = {"q": q, "flagged": int(flags.sum()), "method": "benjamini-hochberg"}


def groups_of(result: Any):
    """(groups, group_of_row) of a result's p-values (one group by default)."""
    if result.pvalue_groups is not None:
        return result.pvalue_groups
    n = len(result.pvalues)
    return ((n, n),), np.zeros(n, dtype=np.int64)
