"""The reputation ledger: posterior, records, migrations, 8 concurrent writers,
a writer killed mid-transaction, and the `reputation` CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats
from sqlalchemy import create_engine, insert, select, text

from poison_expectations.stores import ledger as L
from poison_expectations.apps.cli import main
from poison_expectations.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# Worker processes import only the ledger (and errors), not the package's
# __init__ (which imports Great Expectations), so 8 of them start quickly.
IMPORT_LEDGER_ONLY = f"""
import sys, types
pkg = types.ModuleType("poison_expectations")
pkg.__path__ = [{str(REPO / "poison_expectations")!r}]
sys.modules["poison_expectations"] = pkg
from poison_expectations.stores.ledger import Ledger, SourceRecord
"""

CONCURRENT_WRITER = IMPORT_LEDGER_ONLY + """
import time
url, worker = sys.argv[1], sys.argv[2]
runs, n_sources, start_at = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
while time.time() < start_at:
    time.sleep(0.002)
store = Ledger(url)  # a fresh database: all writers migrate it at the same moment
for r in range(runs):
    records = [SourceRecord(f"src{s:03d}", rows=10 + s, bad_rows=s % 7, verdict="ok",
                            flagged={"label_consistency": s % 7, "near_duplicates": s % 3})
               for s in range(n_sources)]
    store.record_run(f"w{worker}-r{r}", records, success=True)
store.close()
print("done")
"""

ENDLESS_WRITER = IMPORT_LEDGER_ONLY + """
url, prefix = sys.argv[1], sys.argv[2]
store = Ledger(url)
records = [SourceRecord(f"s{s:04d}", rows=100, bad_rows=s % 10, verdict="ok", flagged={"a": s % 10, "b": 1})
           for s in range(3000)]
i = 0
while True:
    print(f"begin {i}", flush=True)
    store.record_run(f"{prefix}-{i}", records, success=True)
    print(f"committed {i}", flush=True)
    i += 1
"""


def _run_script(script: str, *args, **popen):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


# -- reputation math ------------------------------------------------------------------

def test_reputation_is_one_minus_the_beta_posterior_upper_bound():
    fresh = L.reputation(0, 0)  # prior Beta(1, 19): closed form 1 - 0.05 ** (1 / 19)
    assert fresh.upper == pytest.approx(1 - 0.05 ** (1 / 19)) and fresh.mean == pytest.approx(0.05)
    assert fresh.reputation == pytest.approx(0.05 ** (1 / 19))
    bad = L.reputation(400, 150)
    assert bad.upper == pytest.approx(stats.beta.ppf(0.95, 151, 269)) and bad.reputation < 0.62
    good = L.reputation(4000, 80)
    assert 0.02 < good.upper < 0.025 and good.reputation > 0.97
    assert L.reputation(100, 3, prior_bad=2, prior_good=8, level=0.99).upper == pytest.approx(
        stats.beta.ppf(0.99, 5, 105))


def test_ledger_urls():
    assert L.ledger_url(None) == f"sqlite:///{L.default_ledger()}"
    assert L.ledger_url("runs/rep.db") == "sqlite:///runs/rep.db"
    assert L.ledger_url("postgresql://u:p@db/rep") == "postgresql://u:p@db/rep"
    with pytest.raises(ConfigError, match="ledger"):
        L.Ledger("nosuchdialect://x/y")


# -- records ----------------------------------------------------------------------------

def test_record_read_forget_roundtrip(tmp_path):
    with L.Ledger(tmp_path / "sub" / "rep.db") as store:  # creates the folder
        assert store.version == L.SCHEMA_VERSION
        records = [L.SourceRecord("a", 100, 5, "ok", {"label_consistency": 5}),
                   L.SourceRecord("b", 50, 20, "suspicious", {"label_consistency": 20, "outliers": 3})]
        assert store.record_run("r1", records, success=False, data_path="batch.csv") is True
        assert store.record_run("r1", records, success=False) is False  # idempotent per run id
        store.record_run("r2", [L.SourceRecord("a", 10, 1, "ok")], success=True)
        history = store.history()
        assert (history["a"].runs, history["a"].rows, history["a"].bad_rows) == (2, 110, 6)
        assert history["b"].last_verdict == "suspicious" and history["a"].last_verdict == "ok"
        assert list(store.history(["b", "zzz"])) == ["b"]
        (b,) = store.records("b")
        assert b["flagged"] == {"label_consistency": 20, "outliers": 3} and b["data_path"] == "batch.csv"
        assert b["recorded_at"].tzinfo is not None
        with pytest.raises(ValueError, match="bad_rows"):
            store.record_run("r3", [L.SourceRecord("c", 5, 6, "ok")], success=True)
        assert "c" not in store.history()
        assert store.forget("b") == 1 and store.forget("b") == 0
        assert list(store.history()) == ["a"] and store.integrity_problems() == []


def test_migration_from_schema_version_1(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:  # a ledger written by version 1 of the schema
        L.schema_version.create(conn)
        L.MIGRATIONS[1](conn)
        conn.execute(insert(L.schema_version).values(version=1, applied_at=when))
        conn.execute(insert(L.runs).values(run_id="old", recorded_at=when, data_path=None, success=True,
                                           sources=1, rows=300))
        conn.execute(insert(L.source_runs).values(run_id="old", source="vendor", recorded_at=when, rows=300,
                                                  bad_rows=12, verdict="ok"))
        assert "source_signal_flags" not in _tables(conn)
    engine.dispose()

    with L.Ledger(url) as store:
        assert store.version == L.SCHEMA_VERSION
        assert store.history()["vendor"].rows == 300
        store.record_run("new", [L.SourceRecord("vendor", 100, 1, "ok", {"label_consistency": 1})], success=True)
        assert [r["flagged"] for r in store.records("vendor")] == [{}, {"label_consistency": 1}]
        assert store.integrity_problems() == []
    with create_engine(url).connect() as conn:
        assert [r[0] for r in conn.execute(select(L.schema_version.c.version).order_by("version"))] == \
            list(range(1, L.SCHEMA_VERSION + 1))


def test_a_ledger_newer_than_the_code_is_refused(tmp_path):
    url = tmp_path / "new.db"
    L.Ledger(url).close()
    engine = create_engine(f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.execute(insert(L.schema_version).values(version=L.SCHEMA_VERSION + 1,
                                                     applied_at=datetime.now(timezone.utc)))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer"):
        L.Ledger(url)


def _tables(conn) -> set[str]:
    return {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))}


# -- concurrency and crashes ----------------------------------------------------------------

def test_eight_processes_record_at_once_without_losing_a_run(tmp_path):
    url = tmp_path / "shared.db"
    runs, n_sources = 12, 60
    start_at = time.time() + 4.0  # every process past its imports, then all at once
    procs = [_run_script(CONCURRENT_WRITER, url, w, runs, n_sources, start_at) for w in range(8)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0 and out.strip() == "done", err[-2000:]
        assert "locked" not in err
    with L.Ledger(url) as store:
        history = store.history()
        assert len(history) == n_sources
        for s in range(n_sources):
            h = history[f"src{s:03d}"]
            assert (h.runs, h.rows, h.bad_rows) == (8 * runs, 8 * runs * (10 + s), 8 * runs * (s % 7))
        records = store.records("src005")
        assert len({r["run_id"] for r in records}) == 8 * runs
        assert all(r["flagged"] == {"label_consistency": 5, "near_duplicates": 2} for r in records)
        assert store.integrity_problems() == []
    with create_engine(f"sqlite:///{url}").connect() as conn:  # migrated exactly once
        assert [r[0] for r in conn.execute(select(L.schema_version.c.version).order_by("version"))] == \
            list(range(1, L.SCHEMA_VERSION + 1))
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_writer_killed_mid_transaction_leaves_a_consistent_ledger(tmp_path):
    url = tmp_path / "crash.db"
    torn = 0
    for round_ in range(3):
        proc = _run_script(ENDLESS_WRITER, url, f"round{round_}")
        began, committed = {}, {}
        while len(committed) < 2:  # time two whole transactions
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            kind, i = line.split()
            (began if kind == "begin" else committed)[int(i)] = time.monotonic()
        duration = min(committed[i] - began[i] for i in committed)
        line = proc.stdout.readline()  # "begin 2": the third transaction is under way
        assert line.startswith("begin")
        time.sleep(0.3 * duration)
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(timeout=30)
        proc.stderr.close()
        proc.stdout.close()
        finished = "committed 2" in rest
        torn += not finished

        with L.Ledger(url) as store:
            assert store.integrity_problems() == []
            history = store.history()
            runs_of_round = {r["run_id"] for r in store.records("s0007") if r["run_id"].startswith(f"round{round_}")}
            expected = {f"round{round_}-{i}" for i in range(3 if finished else 2)}
            assert runs_of_round == expected  # the killed run is all there or not there at all
            assert len({h.runs for h in history.values()}) == 1  # every source in every surviving run
    assert torn >= 1  # at least one kill landed inside a transaction
    with L.Ledger(url) as store:  # and the ledger still takes writes
        assert store.record_run("after", [L.SourceRecord("s0000", 5, 0, "ok")], success=True)
        assert store.integrity_problems() == []


# -- CLI ---------------------------------------------------------------------------------

@pytest.fixture
def filled(tmp_path):
    url = tmp_path / "rep.db"
    with L.Ledger(url) as store:
        for run in range(3):
            store.record_run(f"run{run}", [
                L.SourceRecord("honest", 400, 8, "ok", {"label_consistency": 8}),
                L.SourceRecord("shady", 120, 50, "suspicious", {"label_consistency": 50, "outliers": 4}),
                L.SourceRecord("newbie", 10, 0, "unjudged", {"label_consistency": 0}),
            ], success=run != 1)
    return url


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_reputation_show(filled):
    result = invoke("reputation", "show", "--ledger", filled)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("ledger: ") and first.endswith("(--ledger)")
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[3:]}
    assert set(lines) == {"honest", "shady", "newbie"}
    assert lines["shady"][1:4] == ["3", "360", "150"] and "LOW" in lines["shady"]
    assert "ok" in lines["honest"] and "new" in lines["newbie"]
    one = invoke("reputation", "show", "--ledger", filled, "--source", "shady")
    assert one.exit_code == 0 and one.output.count("run run") == 3 and "outliers=4" in one.output
    missing = invoke("reputation", "show", "--ledger", filled, "--source", "nobody")
    assert missing.exit_code == 2 and "not in the ledger" in missing.output


def test_reputation_show_uses_the_config_prior(filled, tmp_path):
    cfg = tmp_path / "strict.yml"
    cfg.write_text(f"expectations:\n  sources:\n    ledger: {filled}\n    prior_good: 99.0\n"
                   "    min_reputation: 0.99\n")
    result = invoke("reputation", "show", "--config", cfg)
    assert result.exit_code == 0 and "Beta(1, 99)" in result.output
    honest = next(line for line in result.output.splitlines() if line.startswith("honest"))
    assert "LOW" in honest  # 2% bad rows fail a 1% bound


def test_reputation_export_csv_and_json(filled, tmp_path):
    result = invoke("reputation", "export", "--format", "csv", "--ledger", filled)
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].split(",") == ["run_id", "recorded_at", "source", "rows", "bad_rows", "verdict", "success",
                                   "data_path", "flagged_label_consistency", "flagged_outliers"]
    assert len(lines) == 1 + 9
    out = tmp_path / "rep.json"
    result = invoke("reputation", "export", "--format", "json", "--ledger", filled, "--output", out)
    assert result.exit_code == 0 and result.output == ""
    document = json.loads(out.read_text())
    shady = next(s for s in document["sources"] if s["source"] == "shady")
    assert shady["bad_rows"] == 150 and shady["below_minimum"] is True
    assert shady["reputation"] == pytest.approx(1 - stats.beta.ppf(0.95, 151, 229))
    assert len(document["records"]) == 9 and document["prior"] == {"bad": 1.0, "good": 19.0,
                                                                      "credible_level": 0.95}


def test_reputation_forget_needs_yes(filled):
    refused = invoke("reputation", "forget", "shady", "--ledger", filled)
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert "shady" in L.Ledger(filled).history()
    done = invoke("reputation", "forget", "shady", "--yes", "--ledger", filled)
    assert done.exit_code == 0 and "3 run record(s)" in done.output
    with L.Ledger(filled) as store:
        assert "shady" not in store.history() and store.integrity_problems() == []
    again = invoke("reputation", "forget", "shady", "--yes", "--ledger", filled)
    assert again.exit_code == 2


def test_reputation_check_and_missing_ledger(filled, tmp_path):
    ok = invoke("reputation", "check", "--ledger", filled)
    assert ok.exit_code == 0 and f"ok (schema version {L.SCHEMA_VERSION})" in ok.output
    engine = create_engine(f"sqlite:///{filled}")
    with engine.begin() as conn:  # a source record the run never announced
        conn.execute(insert(L.source_runs).values(run_id="run0", source="ghost", recorded_at=datetime.now(),
                                                  rows=5, bad_rows=0, verdict="ok"))
    engine.dispose()
    broken = invoke("reputation", "check", "--ledger", filled)
    assert broken.exit_code == 1 and "run run0: announces 3 sources" in broken.output
    absent = invoke("reputation", "show", "--ledger", tmp_path / "absent.db")
    assert absent.exit_code == 2 and "no ledger yet" in absent.output
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG data folder: Linux layout")
def test_default_ledger_is_per_user_and_the_environment_variable_overrides_it(tmp_path, monkeypatch):
    """The ledger no longer follows the working folder: a per-user data file,
    $POISON_EXPECTATIONS_LEDGER over it, an explicit config value over both."""
    monkeypatch.delenv(L.LEDGER_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert L.ledger_url(None) == f"sqlite:///{tmp_path}/data/poison-expectations/ledger.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert L.default_ledger() == f"{tmp_path}/home/.local/share/poison-expectations/ledger.db"
    monkeypatch.setenv(L.LEDGER_ENV, str(tmp_path / "team.db"))
    assert L.ledger_url(None) == f"sqlite:///{tmp_path}/team.db"
    assert L.ledger_url("runs/rep.db") == "sqlite:///runs/rep.db"  # the config's own value wins


def test_reputation_show_says_where_the_ledger_is(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from poison_expectations.apps.cli import main

    monkeypatch.setenv(L.LEDGER_ENV, str(tmp_path / "team.db"))
    with L.Ledger(None) as store:
        store.record_run("run1", [L.SourceRecord("vendor_a", 200, 4, "ok")], success=True)
    shown = CliRunner().invoke(main, ["reputation", "show"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0] == f"ledger: {tmp_path / 'team.db'}  ($POISON_EXPECTATIONS_LEDGER)"
    flagged = CliRunner().invoke(main, ["reputation", "show", "--ledger", str(tmp_path / "other.db")])
    assert flagged.output.splitlines()[0] == f"ledger: {tmp_path / 'other.db'}  (--ledger)"
    assert flagged.exit_code == 2 and "no ledger yet" in flagged.output
