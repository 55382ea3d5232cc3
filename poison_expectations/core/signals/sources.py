"""Per-source statistics: which contributors concentrate the flagged rows.

This signal aggregates the flags of the other signals of the run, by signal
name (never a fixed list), per value of the source column:

- rows and share of the batch per source;
- per signal, the share of the source's rows it flagged, and a one-sided
  Fisher exact test of its flagged count against the rest of the batch,
  stratified by label class when there is a label (see source_tests.py):
  an honest source whose class mix leans to a class that is flagged more
  often is compared with the rest's rate in that class;
- Benjamini-Hochberg over every (judged source, signal) test, so the false
  discovery rate of naming a source is at most `alpha`;
- label distribution, and its Jensen-Shannon divergence (base 2, in [0, 1])
  from the other sources and from the reference (reported, never judged:
  honest sources differ in class mix).

A source is *suspicious* when one of its tests is significant after BH AND
its flagged share exceeds the `expected_rate` by at least `min_excess`
(absolute). `expected_rate` is what the rest's per-class flagged rates
predict for this source's class mix. With thousands of rows a test alone
would name an honest source whose rows are a little harder: a calibration
offset of 0.5 sd along the class boundary already adds about 5 points of
label-consistency flags (Phi(-1.0) - Phi(-1.5) on the shifted class at a
class separation of 1.5 sd), hence the default of 10 points. Sources with
fewer than `min_rows` rows are reported but not judged (no test, no BH
slot).

Which signals are aggregated (`signals`), always read from the results
already computed on this batch (`inputs = ("*",)`: this signal never runs
or imports another; its caller computes the inputs first, see
`required_inputs`):
- None (the expectation's default, for hand-built GX suites): label
  consistency when the batch has a label column, else none. The caller
  computes it with its default parameters, so the result does not depend
  on the order in which GX resolves metrics;
- a list of names: exactly those, each computed by the caller with its
  default parameters (and the run's k and random_state);
- ["*"] (the config default, for the runner/CLI): every signal already
  computed on this batch, the latest result of each name. The runner
  computes every configured family before this one (family `order` 900),
  and the GX metric every family its suite requests of the batch
  (gx/metrics/requests.py), so this is every signal of the run; when none
  has run, as for None. Names
  listed next to "*" that did not run are computed by the caller with their
  defaults.
`exclude_signals` removes names from any of these.

Rows of suspicious sources are flagged (reason names the source and its
numbers). Their score is the source's share of rows flagged by any signal,
an estimate of P(row is flagged | it comes from this source), so rows that
a row-level signal flagged still rank above their innocent-looking
neighbours from the same source; other rows score 0. Extra findings columns:
`source` (the row's source) and `source_verdict` (suspicious, ok or
unjudged).

Fit and score: there is no per-row model. A source is compared with the
rest of the same batch, so `fit` keeps only the fitted table's label
distribution (the reference's, for the reported divergence) and no
`reference_scores`; `score` runs the tests on the batch from the results of
the run (`analysis.results()`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.sources import ALL, SOURCES
from poison_expectations.core.signals.base import Signal, SignalResult, State, plain
from poison_expectations.core.signals.source_tests import (class_adjusted_rate, fisher_greater, js_divergence,
                                                           stratified_fisher_greater)

VERDICTS = ("suspicious", "ok", "unjudged")
CONSOLE_MAX_SOURCES = 12
MAX_STRATA_CELLS = 20_000_000  # sources x classes above which the test is not stratified


class SourceStatistics(Signal):
    name = "sources"
    calibration = None
    inputs = (ALL,)  # reads every other signal's flags from analysis.results()
    declaration = SOURCES

    def fit(self, analysis) -> State:
        """The fitted table's label distribution, for the divergence of each
        source's from it (reported, never judged). No per-row model."""
        y = analysis.fitted.y
        if y is None:
            return {"classes": None, "label_counts": None}
        return {"classes": [plain(v) for v in analysis.classes],
                "label_counts": np.bincount(y, minlength=analysis.n_classes).astype(np.int64)}

    def score(self, state: State, analysis) -> SignalResult:
        """The per-source tests on the batch, against the rest of the batch;
        the label divergence also against the stored reference distribution."""
        return self._tests(analysis, _reference_counts(state, analysis))

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the same tests; no reference distribution to compare with."""
        return self._tests(analysis, None)

    def required_inputs(self, analysis) -> list[str]:
        """Names of the signals the caller must compute with their default
        parameters before this one (see module doc): the run context and the
        GX metric call this, so the selection lives in one place."""
        p = self.params
        skip = set(p["exclude_signals"]) | {self.name}
        wanted = p["signals"]
        default = ["label_consistency"] if analysis.batch.y is not None else []
        if wanted is not None and ALL in wanted:
            present = {r.signal for r in analysis.results()} - skip
            extra = [n for n in wanted if n != ALL and n not in present and n not in skip]
            return extra if present or extra else [n for n in default if n not in skip]
        names = default if wanted is None else list(dict.fromkeys(wanted))
        return [n for n in names if n not in skip]

    def _tests(self, analysis, reference_counts: np.ndarray | None) -> SignalResult:
        sources = analysis.batch.sources
        if sources is None:
            raise InputError("per-source checks need a source column: set data.source_column or pass "
                             "--source-column")
        p = self.params
        base = input_results(analysis, p["signals"], p["exclude_signals"], own=self.name)
        stats_ = source_table(sources, analysis.batch.y, analysis.classes, reference_counts,
                              {r.signal: suspicious_rows(r) for r in base}, p["min_rows"], p["alpha"],
                              p["min_excess"])
        return _result(self.name, stats_, p)


# Against a reference a row counts as suspicious for a signal when its p-value is at
# most this: every clean row is, with this probability, whatever its source, so the
# per-source comparison with the rest of the batch needs no calibration. (Rows flagged
# at the run's FDR q are far fewer; too few for a per-source test to see a bad source.)
SUSPICIOUS_P = 0.05


def suspicious_rows(result: SignalResult) -> np.ndarray:
    """The rows a source's share is counted from: p <= SUSPICIOUS_P against a
    reference, the signal's own flags in a self-check."""
    return result.flags if result.pvalues is None else result.pvalues <= SUSPICIOUS_P


def _reference_counts(state: State, analysis) -> np.ndarray | None:
    """The stored label counts by this analysis's class codes."""
    if state.get("label_counts") is None or analysis.classes is None:
        return None
    counts = dict(zip(state["classes"], state["label_counts"], strict=True))
    return np.array([counts.get(plain(v), 0) for v in analysis.classes], dtype=float)


# -- which signals ------------------------------------------------------------

def input_results(analysis, wanted: tuple[str, ...] | None, exclude: tuple[str, ...], own: str
                  ) -> list[SignalResult]:
    """The results to aggregate: the latest one of each selected name (see
    module doc); a selected name with no result is an input error."""
    skip = set(exclude) | {own}
    latest: dict[str, SignalResult] = {}
    for result in analysis.results():  # least recently requested first: the last one per name wins
        if result.signal not in skip:
            latest.pop(result.signal, None)
            latest[result.signal] = result
    present = dict(sorted(latest.items()))
    default = ["label_consistency"] if analysis.batch.y is not None else []
    if wanted is not None and ALL in wanted:
        if present:
            names = list(present) + [n for n in wanted if n != ALL and n not in present and n not in skip]
        else:
            names = [n for n in list(dict.fromkeys(default + [n for n in wanted if n != ALL])) if n not in skip]
    else:
        names = [n for n in (default if wanted is None else list(dict.fromkeys(wanted))) if n not in skip]
    missing = [n for n in names if n not in latest]
    if missing:
        ran = ", ".join(sorted(latest)) or "none"
        raise InputError(f"sources: unknown signal {missing[0]!r} in 'signals': no result of it on this batch "
                         f"(signals run: {ran})")
    return [latest[n] for n in names]


# -- the statistics -----------------------------------------------------------

def source_table(sources: np.ndarray, y: np.ndarray | None, classes: np.ndarray | None,
                 reference_counts: np.ndarray | None, flags: dict[str, np.ndarray], min_rows: int, alpha: float,
                 min_excess: float) -> dict[str, Any]:
    """Per-source counts, class-stratified tests, BH and verdicts (no Python loop over rows)."""
    codes, names = pd.factorize(pd.Series(sources, dtype=object), sort=True)
    names = np.asarray([str(n) for n in names], dtype=object)
    n_total = len(codes)
    n_src = len(names)
    strata, n_strata = _strata(y, n_src, n_total)
    cells = codes * n_strata + strata
    n_sc = np.bincount(cells, minlength=n_src * n_strata).reshape(n_src, n_strata)
    k_sc, any_flag = {}, np.zeros(n_total, dtype=bool)
    for name, f in flags.items():
        f = np.asarray(f, dtype=bool)
        any_flag |= f
        k_sc[name] = np.bincount(cells, weights=f, minlength=n_src * n_strata).reshape(n_src, n_strata)
    any_count = np.bincount(codes, weights=any_flag, minlength=n_src).astype(np.int64)
    label_counts = None
    if y is not None and classes is not None:
        n_classes = len(classes)
        label_counts = np.bincount(codes * n_classes + y, minlength=n_src * n_classes).reshape(n_src, n_classes)
    table = count_table(names, n_sc, k_sc, any_count, label_counts, classes, reference_counts, min_rows, alpha,
                        min_excess)
    return {"codes": codes, **table}


def count_table(names: np.ndarray, n_sc: np.ndarray, k_sc: dict[str, np.ndarray], any_count: np.ndarray,
                label_counts: np.ndarray | None, classes, reference_counts: np.ndarray | None, min_rows: int,
                alpha: float, min_excess: float) -> dict[str, Any]:
    """The statistics from counts alone (so an engine that aggregates, e.g. a
    Spark groupBy, gets the same tests): `n_sc` rows and `k_sc[signal]` flagged
    rows per (source, stratum), `any_count` rows flagged by any signal per
    source, `label_counts` rows per (source, class) or None."""
    n_src, n_strata = n_sc.shape
    rows = n_sc.sum(axis=1)
    n_total = int(rows.sum())
    judged = rows >= min_rows
    signal_names = list(k_sc)
    shape = (n_src, len(signal_names))
    flagged = np.zeros(shape, dtype=np.int64)
    p_values, expected = np.ones(shape), np.zeros(shape)
    for j, name in enumerate(signal_names):
        counts = np.asarray(k_sc[name]).astype(np.int64)
        flagged[:, j] = counts.sum(axis=1)
        p_values[:, j] = _p_values(counts, n_sc, judged)
        expected[:, j] = class_adjusted_rate(counts, n_sc)
    q_values = np.ones_like(p_values)
    tested = np.broadcast_to(judged[:, None], shape) & (flagged.sum(axis=0) > 0)[None, :]
    if tested.any():
        q_values[tested] = stats.false_discovery_control(p_values[tested], method="bh")
    rate = flagged / np.maximum(rows, 1)[:, None]
    rest_rate = (flagged.sum(axis=0)[None, :] - flagged) / np.maximum(n_total - rows, 1)[:, None]
    excess = rate - expected
    significant = tested & (q_values <= alpha) & (excess >= min_excess)
    suspicious = significant.any(axis=1)
    verdict = np.where(~judged, "unjudged", np.where(suspicious, "suspicious", "ok"))
    labels = _label_block(label_counts, classes, reference_counts)
    return {
        "names": names, "rows": rows, "judged": judged, "signals": signal_names,
        "stratified": n_strata > 1, "flagged": flagged, "rate": rate, "rest_rate": rest_rate,
        "expected_rate": expected, "excess": excess, "p": p_values, "q": q_values, "tested": tested,
        "significant": significant, "suspicious": suspicious, "verdict": verdict, "any": any_count,
        "labels": labels,
    }


def _strata(y: np.ndarray | None, n_src: int, n_total: int) -> tuple[np.ndarray, int]:
    """Label classes as strata (one stratum without labels, or when sources x classes is huge)."""
    n_classes = int(y.max()) + 1 if y is not None and len(y) else 1
    if y is None or n_classes * n_src > MAX_STRATA_CELLS:
        return np.zeros(n_total, dtype=np.int64), 1
    return y.astype(np.int64), n_classes


def _p_values(k_sc: np.ndarray, n_sc: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """One-sided p-value per source (1 for unjudged ones and sources with no flag)."""
    K_c, N_c = k_sc.sum(axis=0), n_sc.sum(axis=0)
    k, n = k_sc.sum(axis=1), n_sc.sum(axis=1)
    p = np.ones(len(k))
    if K_c.sum() == 0:
        return p
    if k_sc.shape[1] == 1:
        p[judged] = fisher_greater(k[judged], n[judged], int(K_c[0]), int(N_c[0]))
        return p
    for s in np.flatnonzero(judged & (k > 0)):
        p[s] = stratified_fisher_greater(int(k[s]), n_sc[s], K_c, N_c)
    return p


def _label_block(counts, classes, reference_counts) -> dict[str, Any] | None:
    if counts is None or classes is None:
        return None
    rest = counts.sum(axis=0)[None, :] - counts
    out: dict[str, Any] = {"counts": counts, "js_rest": js_divergence(counts.astype(float), rest.astype(float)),
                           "js_reference": None}
    if reference_counts is not None:
        ref = np.asarray(reference_counts, dtype=float)
        out["js_reference"] = js_divergence(counts.astype(float), np.broadcast_to(ref, counts.shape))
    out["classes"] = [plain(c) for c in classes]
    return out


# -- output -------------------------------------------------------------------

def _result(name: str, t: dict[str, Any], params: dict) -> SignalResult:
    codes = t["codes"]
    min_q = np.where(t["tested"], t["q"], 1.0).min(axis=1) if t["signals"] else np.ones(len(t["names"]))
    row_suspicious = t["suspicious"][codes]
    any_rate = t["any"] / np.maximum(t["rows"], 1)
    scores = np.where(row_suspicious, any_rate[codes], 0.0)
    reasons = np.full(len(codes), "", dtype=object)
    source_reason = [_reason(t, s) if t["suspicious"][s] else "" for s in range(len(t["names"]))]
    reasons[row_suspicious] = np.asarray(source_reason, dtype=object)[codes[row_suspicious]]
    per_source = [_source_summary(t, s, min_q[s]) for s in range(len(t["names"]))]
    per_source.sort(key=lambda d: (VERDICTS.index(d["verdict"]), d["min_q_value"], -d["rows"]))
    summary = {
        "signals": t["signals"],
        "stratified_by_label": bool(t["stratified"]),
        "min_rows": params["min_rows"],
        "alpha": params["alpha"],
        "min_excess": params["min_excess"],
        "n_sources": int(len(t["names"])),
        "n_judged": int(t["judged"].sum()),
        "suspicious_sources": [d["source"] for d in per_source if d["verdict"] == "suspicious"],
        "unjudged_sources": [d["source"] for d in per_source if d["verdict"] == "unjudged"],
        "classes": t["labels"]["classes"] if t["labels"] else None,
        "sources": per_source,
    }
    summary["console_lines"] = console_lines(summary)
    columns = {"source": t["names"][codes], "source_verdict": t["verdict"][codes].astype(object)}
    return SignalResult(name, scores, row_suspicious, reasons, summary, columns)


def _reason(t, s) -> str:
    parts = []
    for j, signal in enumerate(t["signals"]):
        if t["significant"][s, j]:
            parts.append(f"{signal} {t['rate'][s, j]:.1%} vs {t['expected_rate'][s, j]:.1%} expected from the "
                         f"rest (q={t['q'][s, j]:.2g})")
    return f"source {t['names'][s]!r} ({t['rows'][s]} rows) flagged: " + ", ".join(parts)


def _source_summary(t, s, min_q) -> dict[str, Any]:
    n = int(t["rows"][s])
    total = int(t["rows"].sum())
    per_signal = {}
    for j, signal in enumerate(t["signals"]):
        per_signal[signal] = {
            "flagged": int(t["flagged"][s, j]),
            "rate": float(t["rate"][s, j]),
            "rest_rate": float(t["rest_rate"][s, j]),
            "expected_rate": float(t["expected_rate"][s, j]),
            "excess": float(t["excess"][s, j]),
            "p_value": float(t["p"][s, j]) if t["tested"][s, j] else None,
            "q_value": float(t["q"][s, j]) if t["tested"][s, j] else None,
            "significant": bool(t["significant"][s, j]),
        }
    out = {
        "source": str(t["names"][s]),
        "rows": n,
        "share": n / total if total else 0.0,
        "judged": bool(t["judged"][s]),
        "verdict": str(t["verdict"][s]),
        "flagged_any": int(t["any"][s]),
        "flagged_any_rate": int(t["any"][s]) / n if n else 0.0,
        "min_q_value": float(min_q),
        "signals": per_signal,
    }
    labels = t["labels"]
    if labels is not None:
        out["label_counts"] = {str(c): int(v) for c, v in zip(labels["classes"], labels["counts"][s], strict=True)}
        out["label_js_rest"] = float(labels["js_rest"][s])
        out["label_js_reference"] = (float(labels["js_reference"][s]) if labels["js_reference"] is not None
                                     else None)
    return out


def console_lines(summary: dict) -> list[str]:
    """The per-source block the CLI prints after the expectation lines."""
    rows = summary["sources"]
    lines = [f"Sources: {summary['n_sources']} ({summary['n_judged']} judged, min_rows={summary['min_rows']}), "
             f"{len(summary['suspicious_sources'])} suspicious (BH alpha={summary['alpha']:g}, "
             f"min_excess={summary['min_excess']:g}; signals: {', '.join(summary['signals']) or 'none'})"]
    if not summary["signals"]:
        return lines
    width = min(max(len(r["source"]) for r in rows), 32)
    lines.append(f"  {'source':<{width}}  {'rows':>7}  {'share':>6}  {'flagged':>7}  {'expected':>8}  {'q':>8}  "
                 "verdict  (worst signal; expected = the rest's per-class rates on this source's classes)")
    for r in rows[:CONSOLE_MAX_SOURCES]:
        worst = _worst_signal(r)
        rate = f"{worst['rate']:.1%}" if worst else "-"
        expected = f"{worst['expected_rate']:.1%}" if worst else "-"
        q = f"{r['min_q_value']:.2g}" if r["judged"] and worst else "-"
        lines.append(f"  {r['source'][:width]:<{width}}  {r['rows']:>7}  {r['share']:>6.1%}  {rate:>7}  "
                     f"{expected:>8}  {q:>8}  {r['verdict']}")
    if len(rows) > CONSOLE_MAX_SOURCES:
        lines.append(f"  ... {len(rows) - CONSOLE_MAX_SOURCES} more sources in the JSON report")
    return lines


def _worst_signal(row: dict) -> dict | None:
    """The signal with the smallest q (largest excess when untested)."""
    if not row["signals"]:
        return None
    return min(row["signals"].values(), key=lambda d: (d["q_value"] if d["q_value"] is not None else 2.0,
                                                         -d["excess"]))
