"""Plain-text verdict for terminals and logs (CLI stdout, Airflow task log)."""

from __future__ import annotations

from poison_expectations.gx.runner import RunOutcome, top_rows

SHOW_ROWS = 10


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def verdict_text(outcome: RunOutcome, show_rows: int = SHOW_ROWS) -> str:
    verdict = "PASSED" if outcome.success else "FAILED"
    lines = [f"poison-check {verdict}: {outcome.data_path or 'batch'} — {len(outcome.findings)} rows, "
             f"{outcome.flagged_count} flagged"]
    width = max(len(e.expectation) for e in outcome.expectations)
    for e in outcome.expectations:
        status = "PASS" if e.success else "FAIL"
        limit = ", ".join(f"{k}={_fmt(v)}" for k, v in e.limit.items())
        gate = e.details.get("reference_gate")
        extra = f"  (reference rate {gate['reference_rate']:.4g}, p={gate['p_value']:.2g})" if gate else ""
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
