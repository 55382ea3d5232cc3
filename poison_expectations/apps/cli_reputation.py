"""`poison-check reputation ...`: read, export and edit the source-reputation ledger.

The ledger and the reputation prior come from the checkpoint config
(`expectations.sources`); `--ledger` overrides the location. Exit codes as
for `validate`: 0 done, 2 usage/config/ledger error (one line, no traceback),
and `check` exits 1 when the ledger is inconsistent.
"""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from poison_expectations.apps.cli import EXIT_FAILED, guarded
from poison_expectations.core.errors import InputError, PoisonCheckError

_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="Checkpoint config YAML (ledger location and reputation prior).")
_ledger_option = click.option("--ledger", help="Ledger SQLite file or SQLAlchemy URL (overrides the config).")


@click.group("reputation")
def reputation():
    """Source-reputation ledger: show, export, forget, check."""


def _settings(config_path, ledger) -> dict:
    from poison_expectations.core.config import load_config

    section = load_config(config_path)["expectations"]["sources"]
    if ledger is not None:
        section = {**section, "ledger": ledger}
    return section


def ledger_origin(section: dict, ledger_flag) -> str:
    """Why this ledger: the flag, the config, the environment variable or the per-user default."""
    from poison_expectations.stores.ledger import LEDGER_ENV

    if ledger_flag is not None:
        return "--ledger"
    if section["ledger"] is not None:
        return "config expectations.sources.ledger"
    import os

    return f"${LEDGER_ENV}" if os.environ.get(LEDGER_ENV, "").strip() else "per-user default"


def _open(section: dict, must_exist: bool = True):
    from poison_expectations.stores.ledger import Ledger, ledger_exists, ledger_url

    if must_exist and not ledger_exists(section["ledger"]):
        raise InputError(f"ledger {ledger_url(section['ledger'])}: no ledger yet (it is written by "
                         "`poison-check validate` runs with a source column)")
    return Ledger(section["ledger"])


def summaries(store, section: dict, source: str | None = None) -> list[dict]:
    """One dict per source: history totals and Beta-posterior reputation."""
    from poison_expectations.stores.ledger import reputation as posterior

    history = store.history([source] if source is not None else None)
    out = []
    for name, h in history.items():
        rep = posterior(h.rows, h.bad_rows, section["prior_bad"], section["prior_good"], section["credible_level"])
        out.append({
            "source": name, "runs": h.runs, "rows": h.rows, "bad_rows": h.bad_rows,
            "bad_rate": h.bad_rows / h.rows if h.rows else 0.0, "bad_rate_mean": rep.mean,
            "bad_rate_upper": rep.upper, "reputation": rep.reputation,
            "below_minimum": bool(h.rows >= section["min_history_rows"] and rep.reputation < section["min_reputation"]),
            "new": bool(h.rows < section["min_history_rows"]),
            "first_seen": h.first_seen.isoformat() if h.first_seen else None,
            "last_seen": h.last_seen.isoformat() if h.last_seen else None,
            "last_verdict": h.last_verdict,
        })
    return out


@reputation.command("show")
@click.option("--source", help="Only this source (with its run-by-run history).")
@_config_option
@_ledger_option
@guarded
def show(source, config_path, ledger):
    """Print each source's history and reputation as a table."""
    from sqlalchemy.engine import make_url

    from poison_expectations.stores.ledger import ledger_url, sqlite_path

    section = _settings(config_path, ledger)
    url = ledger_url(section["ledger"])
    where = sqlite_path(url) or make_url(url).render_as_string(hide_password=True)
    click.echo(f"ledger: {where}  ({ledger_origin(section, ledger)})")
    with _open(section) as store:
        rows = summaries(store, section, source)
        if source is not None and not rows:
            raise InputError(f"source {source!r} is not in the ledger")
        history = store.records(source) if source is not None else []
    click.echo(f"Reputation = 1 - {section['credible_level']:g} upper credible bound of the bad-row rate, prior "
               f"Beta({section['prior_bad']:g}, {section['prior_good']:g}); minimum {section['min_reputation']:g} "
               f"after {section['min_history_rows']} rows")
    if not rows:
        click.echo("(the ledger has no sources)")
        return
    width = min(max(len("source"), *(len(r["source"]) for r in rows)), 40)
    click.echo(f"{'source':<{width}}  {'runs':>5}  {'rows':>9}  {'bad':>8}  {'bad rate':>8}  {'upper':>6}  "
               f"{'reputation':>10}  status      last verdict")
    for r in rows:
        status = "new" if r["new"] else ("LOW" if r["below_minimum"] else "ok")
        click.echo(f"{r['source'][:width]:<{width}}  {r['runs']:>5}  {r['rows']:>9}  {r['bad_rows']:>8}  "
                   f"{r['bad_rate']:>8.2%}  {r['bad_rate_upper']:>6.3f}  {r['reputation']:>10.3f}  {status:<10}  "
                   f"{r['last_verdict'] or ''}")
    for record in history:
        flagged = ", ".join(f"{k}={v}" for k, v in sorted(record["flagged"].items())) or "-"
        click.echo(f"  run {record['run_id']}  {record['recorded_at']:%Y-%m-%d %H:%M:%S}  rows {record['rows']}  "
                   f"bad {record['bad_rows']}  [{flagged}]  {record['verdict']}")


@reputation.command("export")
@click.option("--format", "output_format", type=click.Choice(["csv", "json"]), required=True,
              help="csv: one line per (run, source) record; json: sources with reputations and records.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--source", help="Only this source.")
@_config_option
@_ledger_option
@guarded
def export(output_format, output, source, config_path, ledger):
    """Export the ledger (CSV or JSON)."""
    from poison_expectations.stores.io import write_text_atomic
    from poison_expectations.stores.ledger import dumps_records

    section = _settings(config_path, ledger)
    with _open(section) as store:
        records = store.records(source)
        sources = summaries(store, section, source)
    if output_format == "json":
        body = json.loads(dumps_records(records))
        text = json.dumps({"prior": {"bad": section["prior_bad"], "good": section["prior_good"],
                                     "credible_level": section["credible_level"]},
                           "sources": sources, "records": body}, indent=2)
    else:
        text = records_csv(records)
    if output:
        write_text_atomic(output, text)
    else:
        click.echo(text, nl=not text.endswith("\n"))


def records_csv(records: list[dict]) -> str:
    """Flat CSV: one column per signal (flagged_<signal>)."""
    signals = sorted({s for r in records for s in r["flagged"]})
    base = ["run_id", "recorded_at", "source", "rows", "bad_rows", "verdict", "success", "data_path"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(base + [f"flagged_{s}" for s in signals])
    for r in records:
        writer.writerow([r["recorded_at"].isoformat() if k == "recorded_at" else r[k] for k in base]
                        + [r["flagged"].get(s, "") for s in signals])
    return buffer.getvalue()


@reputation.command("forget")
@click.argument("source")
@click.option("--yes", is_flag=True, help="Confirm: delete every record of SOURCE.")
@_config_option
@_ledger_option
@guarded
def forget(source, yes, config_path, ledger):
    """Delete every ledger record of SOURCE (needs --yes)."""
    if not yes:
        raise PoisonCheckError(f"refusing to forget {source!r} without --yes")
    section = _settings(config_path, ledger)
    with _open(section) as store:
        removed = store.forget(source)
    if not removed:
        raise InputError(f"source {source!r} is not in the ledger")
    click.echo(f"forgot {source}: {removed} run record(s) deleted")


@reputation.command("check")
@_config_option
@_ledger_option
@guarded
def check(config_path, ledger):
    """Check the ledger's integrity (exit 1 when it is inconsistent)."""
    section = _settings(config_path, ledger)
    with _open(section) as store:
        problems = store.integrity_problems()
        version = store.version
    if problems:
        for problem in problems:
            click.echo(f"  {problem}")
        click.echo(f"ledger {store.url}: {len(problems)} problem(s)")
        sys.exit(EXIT_FAILED)
    click.echo(f"ledger {store.url}: ok (schema version {version})")


__all__ = ["reputation", "summaries", "records_csv"]
