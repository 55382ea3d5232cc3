"""Plain-text verdict for terminals and logs (CLI stdout, Airflow task log)."""

from __future__ import annotations

from poison_expectations.gx.runner import RunOutcome, flagging_summary, top_rows

SHOW_ROWS = 10


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def verdict_text(outcome: RunOutcome, show_rows: int = SHOW_ROWS) -> str:
    verdict = "PASSED" if outcome.success else "FAILED"
    lines = [f"poison-check {verdict}: {outcome.data_path or 'batch'} — {len(outcome.findings)} rows, "
             f"{outcome.flagged_count} flagged"]
    flagging = flagging_summary(outcome.findings, outcome.config["verdicts"]["q"])
    if "q" in flagging:
        lines.append(f"  flagged at FDR q={flagging['q']:g}: {flagging['by_fdr']} rows (expected share of clean rows "
                     f"among them at most {flagging['expected_clean_share_among_fdr_flags_at_most']:.1%}); "
                     f"{flagging['by_group_tests']} more named by group tests (trigger patterns, collision groups, "
                     "suspicious sources)")
    roles = outcome.analysis.roles
    for role in outcome.analysis.reference_lacks:
        column = roles.source_column if role == "source" else roles.id_column
        lines.append(f"  note: the reference has no {role} column '{column}'; it is used for its features and "
                     "labels only")
    width = max(len(e.expectation) for e in outcome.expectations)
    for e in outcome.expectations:
        status = "PASS" if e.success else "FAIL"
        limit = ", ".join(f"{k}={_fmt(v)}" for k, v in e.limit.items())
        gate, test = e.details.get("reference_gate"), e.details.get("verdict")
        extra = f"  (reference rate {gate['reference_rate']:.4g}, p={gate['p_value']:.2g})" if gate else ""
        if test and test.get("lower_bound") is not None:
            extra = (f"  (p={test['p_value']:.2g}; at least {test['lower_bound']} rows poisoned with confidence "
                     f"{1 - test['alpha']:.4g})")
        lines.append(f"  {status}  {e.expectation:<{width}}  observed {_fmt(e.observed_value)}  limit {limit}{extra}")
    if outcome.skipped:
        lines.append(f"  SKIP  {', '.join(outcome.skipped)} (no label column: pass --label)")
    for section in extra_sections(outcome):
        lines.extend(section)
    top = top_rows(outcome.findings, outcome.analysis.id_name, show_rows)
    if len(top):
        lines.append(f"Most suspicious rows ({outcome.analysis.id_name}, score, reasons):")
        for row in top.itertuples(index=False):
            lines.append(f"  {row[0]}  {row[1]:.3f}  {row[2]}")
    return "\n".join(lines)


def extra_sections(outcome: RunOutcome) -> list[list[str]]:
    """Signal-specific blocks (clusters, sources, triggers) from their summaries."""
    sections = []
    for result in outcome.results.values():
        lines = result.summary.get("console_lines")
        if lines:
            sections.append(list(lines))
    return sections


def _rounded(value):
    """Floats to 4 significant digits, inside lists and dicts too (0.0137, not 0.013666666666666667)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _row_ids(result: dict, columns, count: int) -> list:
    """A few offending row ids: our flagged ids, or for a map expectation
    GX's unexpected index list (ids when the result format names
    `unexpected_index_column_names`; the checked columns' values are left out)."""
    index = result.get("partial_unexpected_index_list") or []
    if index:
        if isinstance(index[0], dict):  # [{id column: value, checked column: value, ...}, ...]
            keys = [k for k in index[0] if k not in set(columns or ())] or list(index[0])
            index = [item[keys[0]] if len(keys) == 1 else {k: item[k] for k in keys} for item in index]
        return [_rounded(i) for i in index[:count]]
    ids = result.get("partial_unexpected_list") or []
    if ids and isinstance(ids[0], dict):  # a map expectation's column values, not ids
        return []
    return [_rounded(i) for i in ids[:count]]


def checkpoint_lines(checkpoint_result, show_ids: int = 5) -> list[str]:
    """One line per expectation of a GX checkpoint run: status, type, observed
    value, limits, unexpected count and a few row ids, numbers rounded."""
    lines = []
    for validation in checkpoint_result.run_results.values():
        for r in validation.results:
            result, config = r.result or {}, r.expectation_config
            limit = (result.get("details") or {}).get("limit")
            if limit is None and "mostly" in config.kwargs:
                limit = {"mostly": config.kwargs["mostly"]}
            parts = [f"  {'PASS' if r.success else 'FAIL'}  {config.type}"]
            if result.get("observed_value") is not None:
                parts.append(f"observed {_rounded(result['observed_value'])}")
            if limit:
                parts.append("limit " + ", ".join(f"{k}={_rounded(v)}" for k, v in limit.items()))
            if result.get("unexpected_count") is not None:
                total = result.get("element_count")
                share = f" ({result['unexpected_count'] / total:.2%})" if total else ""
                parts.append(f"unexpected {result['unexpected_count']} of {total}{share}")
            ids = _row_ids(result, config.kwargs.get("column_list"), show_ids)
            if ids and result.get("unexpected_count"):
                more = ", ..." if result["unexpected_count"] > len(ids) else ""
                parts.append(f"rows {', '.join(map(str, ids))}{more}")
            lines.append("  ".join(parts))
    return lines
