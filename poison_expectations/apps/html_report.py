"""`--html report.html`: one self-contained page for a person deciding
whether a batch may be trained on.

Top to bottom: the verdict, the expectations (sentence, observed value,
limit), one section per signal (score histogram with the flag limit,
flagged share per source, the result details as tables), then the most
suspicious rows with their reasons. CSS and SVG plots are inline: the file
can be mailed or attached to a ticket. Generic over expectation families:
everything comes from RunOutcome.results, the GX results and their details.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from string import Template

from poison_expectations.core.details import DetailTable, detail_blocks, fmt, limit_text
from poison_expectations.stores.io import write_text_atomic
from poison_expectations.apps.report_plots import score_histogram, source_bars
from poison_expectations.gx.runner import RunOutcome, top_rows

TOP_ROWS = 25
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;margin:0;background:#f4f6f8}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px}h3{font-size:14px;margin:14px 0 6px}
.verdict{border-radius:8px;padding:18px 22px;color:#fff;margin-bottom:18px}
.verdict.passed{background:#1e8449}.verdict.failed{background:#c0392b}
.verdict p{margin:2px 0;opacity:.95}
.card{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:16px;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e7eb;vertical-align:top;overflow-wrap:anywhere}
tr.reasons td{border-bottom:2px solid #d5dbe1;color:#3e4c59;padding-bottom:8px}
tr.reasons + tr td,tbody tr.scores td{border-bottom:none}
code{background:#eef1f4;border-radius:3px;padding:0 4px;font-size:13px}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num,td.tight,.badge{white-space:nowrap;overflow-wrap:normal}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-weight:700;font-size:12px;color:#fff}
.badge.pass{background:#1e8449}.badge.fail{background:#c0392b}
.sentence{color:#52606d}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{max-width:100%;height:auto}
.plots svg text{font-family:"DejaVu Sans",system-ui,sans-serif}
pre{background:#f0f2f5;padding:8px;border-radius:4px;white-space:pre-wrap;overflow-wrap:anywhere}
.muted{color:#7b8794;font-size:12px}
"""


def esc(value) -> str:
    return html.escape(str(value))


def sentence(expectation_config) -> str:
    """The expectation's Data Docs sentence as HTML: its stored parameters as
    `<code>` chips (so a column named like a word still reads as a name), and
    every placeholder filled (an unset parameter is a dash, as in Data Docs)."""
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        template = getattr(get_expectation_impl(expectation_config.type), "renderer_template", "")
    except Exception:  # noqa: BLE001 - an expectation type we do not know: no sentence
        template = ""
    values = {name: "–" for name in re.findall(r"\$(\w+)", template)}
    values.update({k: fmt(v) for k, v in expectation_config.kwargs.items() if v is not None})
    return Template(esc(template)).safe_substitute({k: f"<code>{esc(v)}</code>" for k, v in values.items()})


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{esc(c)}</td>" for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _detail_table(table: DetailTable) -> str:
    more = f"<p class=muted>… and {table.hidden_rows} more rows</p>" if table.hidden_rows else ""
    return f"<h3>{esc(table.title)}</h3>" + _table(table.header, table.rows) + more


def _verdict(outcome: RunOutcome) -> str:
    ok = outcome.success
    failed = outcome.failed_expectations()
    rows, flagged = len(outcome.findings), outcome.flagged_count
    headline = ("PASSED: no poisoning signal is over its limit" if ok else
                f"FAILED: {len(failed)} poisoning expectation{'s' if len(failed) != 1 else ''} over the limit")
    reference = outcome.config["data"]["reference"] or "none (self-check)"
    return (f"<section class='verdict {'passed' if ok else 'failed'}'><h1>{esc(headline)}</h1>"
            f"<p>{esc(outcome.data_path or 'in-memory batch')}: {rows} rows, {flagged} flagged "
            f"({flagged / max(rows, 1):.1%}). Reference: {esc(reference)}.</p>"
            f"<p class=muted style='color:#fff'>run {esc(outcome.run_id)} · "
            f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}</p></section>")


def _expectation_rows(outcome: RunOutcome) -> list[tuple]:
    """(ExpectationOutcome, sentence) pairs, in checkpoint order."""
    configs = [r.expectation_config for v in outcome.checkpoint_result.run_results.values() for r in v.results]
    return [(e, sentence(c)) for e, c in zip(outcome.expectations, configs, strict=False)]


def _limit_cell(expectation) -> str:
    """The limit, and with a reference the gate that actually decided."""
    text = limit_text(expectation.limit)
    gate, test = expectation.details.get("reference_gate"), expectation.details.get("verdict")
    if isinstance(test, dict) and "p_value" in test:
        bound = test.get("lower_bound")
        text += (f"; reference gate: {test.get('method')}, p-value {fmt(test['p_value'])}"
                 + (f", at least {bound} rows poisoned (confidence {fmt(1 - test['alpha'])})"
                    if bound is not None else ""))
    if isinstance(gate, dict) and "reference_rate" in gate:
        text += (f"; against the reference: its rate {fmt(gate['reference_rate'])}, excess "
                 f"{fmt(gate.get('excess_over_reference'))}, p-value {fmt(gate.get('p_value'))}")
    return text


def _overview(outcome: RunOutcome, pairs) -> str:
    rows = "".join(
        f"<tr><td class=tight><span class='badge {'pass' if e.success else 'fail'}'>"
        f"{'PASS' if e.success else 'FAIL'}</span></td>"
        f"<td><b>{esc(e.expectation)}</b><div class=sentence>{text}</div></td>"
        f"<td><a href='#signal-{esc(e.signal)}'>{esc(e.signal)}</a></td><td>{esc(fmt(e.observed_value))}</td>"
        f"<td>{esc(_limit_cell(e))}</td><td class=num>{e.unexpected_count}</td></tr>" for e, text in pairs)
    head = "".join(f"<th>{h}</th>" for h in ("", "expectation", "signal", "observed", "limit", "flagged rows"))
    sources = ""
    if outcome.analysis.batch.sources is not None:
        sources = "<div class=plots>" + source_bars(
            "all signals: flagged share per source", outcome.analysis.batch.sources,
            outcome.findings["flagged"].to_numpy(dtype=bool)) + "</div>"
    return (f"<section class=card><h2>Expectations</h2><table><thead><tr>{head}</tr></thead>{rows}</table>"
            f"{sources}</section>")


def _signal_section(outcome: RunOutcome, name: str, pairs) -> str:
    result = outcome.results[name]
    sources = outcome.analysis.batch.sources
    plots = [score_histogram(name, result.scores, result.flags)]
    if sources is not None:
        plots.append(source_bars(f"{name}: flagged share per source", sources, result.flags))
    parts = [f"<section class=card id='signal-{esc(name)}'><h2>{esc(name)}</h2>",
             f"<p>{result.flagged_count} of {result.n_rows} rows flagged ({result.flagged_rate:.2%}).</p>",
             "<div class=plots>" + "".join(plots) + "</div>"]
    for expectation, text in pairs:
        if expectation.signal != name:
            continue
        badge = "pass" if expectation.success else "fail"
        parts.append(f"<h3><span class='badge {badge}'>{'PASS' if expectation.success else 'FAIL'}</span> "
                     f"{esc(expectation.expectation)}</h3><p class=sentence>{text}</p>")
        blocks = detail_blocks(expectation.details)
        facts = [["observed value", fmt(expectation.observed_value)], ["limit", limit_text(expectation.limit)],
                 ["flagged rows", str(expectation.unexpected_count)], *map(list, blocks.facts)]
        parts.append(_table(["", "value"], facts))
        parts.extend(_detail_table(t) for t in blocks.tables)
    lines = result.summary.get("console_lines")
    if lines:
        parts.append("<h3>Notes</h3><pre>" + esc("\n".join(map(str, lines))) + "</pre>")
    return "".join(parts) + "</section>"


def _top_rows(outcome: RunOutcome) -> str:
    """The most suspicious rows: one line of values, then the reasons across
    the table's whole width (a reasons column next to a score per signal
    was squeezed to a word per line)."""
    id_name = outcome.analysis.id_name
    top = top_rows(outcome.findings, id_name, TOP_ROWS)
    if top.empty:
        return "<section class=card><h2>Flagged rows</h2><p>No row was flagged.</p></section>"
    roles = outcome.analysis.roles
    extra = [c for c in (roles.label_column, roles.source_column) if c and c in outcome.data.columns]
    signals = list(outcome.results)
    header = [id_name, "poison score", *extra, *(f"{n} score" for n in signals)]
    numeric = {1} | set(range(2 + len(extra), len(header)))
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for position, row_index in enumerate(top.index.to_numpy()):
        values = [top.iloc[position][id_name], f"{top.iloc[position]['poison_score']:.3f}"]
        values += [outcome.data.iloc[row_index][c] for c in extra]
        values += [f"{outcome.findings.iloc[row_index][f'{n}_score']:.3f}" for n in signals]
        cells = "".join(f"<td class={'num' if i in numeric else 'tight' if len(str(v)) <= 24 else 'text'}>{esc(v)}</td>"
                        for i, v in enumerate(values))  # short values (ids, labels, sources) stay on one line
        body.append(f"<tr class=scores>{cells}</tr><tr class=reasons><td colspan={len(header)}>"
                    f"{esc(top.iloc[position]['reasons'])}</td></tr>")
    shown = f"The {len(top)} highest-scoring of {outcome.flagged_count}"
    return (f"<section class=card id=rows><h2>Most suspicious rows</h2><p>{shown} flagged rows, each with its "
            "reasons below it; every flagged row is in the --findings and --quarantine outputs.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>")


def render_html(outcome: RunOutcome) -> str:
    pairs = _expectation_rows(outcome)
    sections = [_verdict(outcome), _overview(outcome, pairs)]
    sections += [_signal_section(outcome, name, pairs) for name in outcome.results]
    sections.append(_top_rows(outcome))
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.timings.items())
    sections.append(f"<p class=muted>poison-check · {esc(timings)}</p>")
    title = f"poison-check {'PASSED' if outcome.success else 'FAILED'}: {outcome.data_path or 'batch'}"
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>")


def write_html_report(outcome: RunOutcome, target: str | Path) -> None:
    write_text_atomic(target, render_html(outcome))

