"""The row-level findings table: one row per batch row, in input order.

Against a reference or profile every signal with row p-values (conformal,
core/verdicts/evidence.py) contributes its `<signal>_p`; a row's p-values
are combined over the signals (Cauchy, or Bonferroni over the minimum: both
valid under dependence, core/verdicts/combine.py) into `combined_p`, and
`flagged` is Benjamini-Hochberg over the rows at the run's FDR q: the
expected share of clean rows among the flagged is at most q. `poison_score`
only ranks: Fisher's product of each signal's deterministic, score-monotone
ranking p-values (core/verdicts/ranking.py), not a transform of
`combined_p`, whose random tie-breaks would put the rows a signal is most sure
of in random order. Rows named by a group-level test
of a signal's own (a trigger pattern, a collision group, a suspicious
source) are flagged too, with their reasons.

A self-check has no p-values; `poison_score` then ranks in two tiers: a row
some signal flagged scores 0.5 + 0.5 x its highest flagging score, any
other row 0.5 x its mean rank over the signals in play (see `tiered_scores`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from poison_expectations.core.errors import InputError
from poison_expectations.core.verdicts.combine import combine_pvalues
from poison_expectations.core.verdicts.fdr import benjamini_hochberg
from poison_expectations.core.verdicts.gate import estimated_share
from poison_expectations.core.verdicts.ranking import ranking_score

if TYPE_CHECKING:
    from poison_expectations.core.analysis import Analysis
    from poison_expectations.core.signals.base import SignalResult

REASON_SEPARATOR = "; "
FINDINGS_COLUMNS = ("poison_score", "flagged", "combined_p", "reasons")  # plus <signal>_score / _p columns


def build_findings(analysis: "Analysis", results: list["SignalResult"], combine: str = "cauchy") -> pd.DataFrame:
    """id, poison_score, flagged, (combined_p,) <signal>_score (and <signal>_p)
    per signal, extra signal columns, reasons."""
    n = analysis.batch.n
    findings = pd.DataFrame({analysis.id_name: analysis.batch.ids})
    for result in results:
        columns = [(f"{result.signal}_score", result.scores), *result.columns.items()]
        if result.pvalues is not None:
            columns.append((f"{result.signal}_p", result.pvalues))
        for column, values in columns:
            if column == analysis.id_name:
                raise InputError(f"id column '{column}' has the name of a findings column of the "
                                 f"{result.signal} signal; rename it")
            findings[column] = values
    tested = [r for r in results if r.pvalues is not None]
    if tested:
        combined = combine_pvalues(np.column_stack([np.asarray(r.pvalues) for r in tested]), combine)
        flagged, _ = benjamini_hochberg(combined, analysis.options.fdr_q)
        score = ranking_score(np.column_stack([_rank_pvalues(r) for r in tested]))
        findings.insert(3, "combined_p", combined)
    else:
        score, flagged = tiered_scores(results, n)
    for result in results:
        if "fdr" not in result.summary:  # no row p-values, or group-level flags of the signal's own
            flagged = flagged | result.flags
    findings.insert(1, "poison_score", score)
    findings.insert(2, "flagged", flagged)
    findings["reasons"] = _reasons(results, flagged, n)
    return findings


def _rank_pvalues(result: "SignalResult") -> np.ndarray:
    """What poison_score ranks a signal's rows by: its deterministic ranking
    p-values where core/verdicts/evidence.py set them, else its p-values."""
    return np.asarray(result.pvalues if result.rank_pvalues is None else result.rank_pvalues, dtype=np.float64)


def flagging_summary(findings: pd.DataFrame, q: float) -> dict:
    """What `flagged` promises: how many rows BH named at FDR q, the bound on
    the expected share of clean rows among them (q times Storey's estimate of
    the clean share, at most q), and how many rows group-level tests added."""
    if "combined_p" not in findings:
        return {"method": "self-check: the signals' own cuts (no stated error rate)",
                "flagged": int(findings["flagged"].sum())}
    by_fdr, _ = benjamini_hochberg(findings["combined_p"].to_numpy(), q)
    clean_share = 1.0 - estimated_share(findings["combined_p"].to_numpy())
    flagged = findings["flagged"].to_numpy(dtype=bool)
    return {"method": "benjamini-hochberg", "q": q, "flagged": int(flagged.sum()), "by_fdr": int(by_fdr.sum()),
            "by_group_tests": int((flagged & ~by_fdr).sum()),
            "expected_clean_share_among_fdr_flags_at_most": round(q * clean_share, 4)}


def _reasons(results: list["SignalResult"], flagged: np.ndarray, n: int) -> np.ndarray:
    """For each flagged row: the reasons of the signals that flagged it (at
    their own FDR q), else its smallest p-value's signal; "" for the others
    (built for the flagged rows only: a batch of 1M rows flags a few)."""
    reasons: dict[int, list[str]] = {int(row): [] for row in np.flatnonzero(flagged)}
    for result in results:
        for row in np.flatnonzero(result.flags & flagged):
            reasons[int(row)].append(result.reasons[row])
    tested = [r for r in results if r.pvalues is not None]
    if tested and reasons:
        rows = np.fromiter(reasons, dtype=np.int64, count=len(reasons))
        p = np.column_stack([np.asarray(r.pvalues)[rows] for r in tested])
        best = p.argmin(axis=1)
        for i, row_at in enumerate(rows.tolist()):
            if not reasons[row_at]:
                reasons[row_at].append(f"{tested[best[i]].signal}: p = {p[i, best[i]]:.2g}")
    out = np.full(n, "", dtype=object)
    for at, parts in reasons.items():
        out[at] = REASON_SEPARATOR.join(parts)
    return out


def tiered_scores(results: list["SignalResult"], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Self-check ranking (no p-values): a row that some signal flagged (its
    calibrated cut says so) scores 0.5 + 0.5 x the highest score among the
    signals that flagged it; any other row 0.5 x its mean rank (Borda count)
    over the signals that flagged some row of this batch, or all of them
    when none did. The signals' raw scores are on different scales, so a
    plain maximum over many signals pushes clean rows up to 1."""
    flag_scores = np.zeros(n)
    flagged = np.zeros(n, dtype=bool)
    for result in results:
        flag_scores = np.maximum(flag_scores, np.where(result.flags, result.scores, 0.0))
        flagged |= result.flags
    unflagged = mean_rank([r.scores for r in results if r.flags.any()] or [r.scores for r in results], n)
    return np.where(flagged, 0.5 + 0.5 * flag_scores, 0.5 * unflagged), flagged


def mean_rank(score_arrays: list[np.ndarray], n: int) -> np.ndarray:
    """Mean over the arrays of each row's rank in [0, 1] (ties share their average rank)."""
    if not score_arrays or n < 2:
        return np.zeros(n)
    ranks = [(rankdata(scores) - 1.0) / (n - 1) for scores in score_arrays]
    return np.mean(ranks, axis=0)


def top_rows(findings: pd.DataFrame, id_name: str, count: int) -> pd.DataFrame:
    flagged = findings[findings["flagged"]]
    ranked = flagged.sort_values("poison_score", ascending=False, kind="stable").head(count)
    return ranked[[id_name, "poison_score", "reasons"]]
