"""Issue 17: one commit point for every output and the ledger, retries that
never count twice, one-line errors for hostile paths (symlink loops, FIFOs,
/dev/zero configs, full disks), empty columns and trailing commas."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_hardening import FAST, REPO, assert_clean_failure, make_table, tmpfs, validate  # noqa: F401

from poison_expectations.core.config import load_config
from poison_expectations.core.errors import ConfigError, OutputError
from poison_expectations.stores import io as pio
from poison_expectations.stores import ledger as L


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "fast.yml"
    path.write_text(FAST, encoding="utf-8")
    return path


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def hook_log(monkeypatch):
    """An after-run hook (as the ledger's) that records which outputs were visible when it ran."""
    from poison_expectations.core import registry

    seen, folder = [], []
    import poison_expectations.gx.expectations  # noqa: F401  (registers the families' GX bindings)
    family = registry._FAMILIES["label_consistency"]
    monkeypatch.setitem(registry._FAMILIES, "label_consistency",
                        replace(family, after_run=lambda section, outcome: seen.append(_entries(folder[0]))))
    return seen, folder


# -- 1. one commit point ------------------------------------------------------------------

def test_html_and_data_docs_are_staged_before_the_ledger_hook_and_published_with_the_rest(tmp_path, config,
                                                                                           hook_log):
    seen, folder = hook_log
    data = make_table(tmp_path / "t.csv")
    out = tmp_path / "out"
    out.mkdir()
    folder.append(out)
    result, paths = validate(data, config, out, "--html", str(out / "r.html"), "--data-docs", str(out / "docs"))
    assert result.exit_code in (0, 1), result.stderr
    staged = seen[0]  # when the ledger records: every output rendered (staged), none visible
    assert [n for n in staged if not n.startswith(".")] == []
    assert any(n.startswith(".r.html.") for n in staged) and any(n.startswith(".docs.") for n in staged)
    assert _visible(out) == ["docs", "findings.csv", "r.html", "report.json"]
    assert (out / "docs" / "index.html").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_failing_html_report_publishes_nothing_and_records_nothing(tmp_path, config, hook_log, monkeypatch):
    from poison_expectations.apps import html_report

    seen, folder = hook_log
    folder.append(tmp_path)
    data = make_table(tmp_path / "t.csv")

    def full_disk(outcome):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(html_report, "render_html", full_disk)
    result, paths = validate(data, config, tmp_path, "--html", str(tmp_path / "r.html"))
    assert_clean_failure(result, paths, "No space left on device")
    assert not (tmp_path / "r.html").exists() and seen == []


def test_data_docs_into_an_existing_site_add_this_run_and_keep_the_earlier_ones(tmp_path, config):
    data = make_table(tmp_path / "t.csv")
    docs = tmp_path / "docs"
    for _ in range(2):
        result, _paths = validate(data, config, tmp_path, "--data-docs", str(docs), outputs=())
        assert result.exit_code in (0, 1), result.stderr
    assert len(list((docs / "validations").rglob("*.html"))) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- 1. idempotent ledger ----------------------------------------------------------------

def _ledger_config(tmp_path) -> Path:
    path = tmp_path / "ledger.yml"
    path.write_text(FAST + f"  sources:\n    ledger: {tmp_path / 'ledger.db'}\n", encoding="utf-8")
    return path


def test_a_retried_batch_is_recorded_once(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    frame.insert(0, "row_id", np.arange(300))
    frame["label"] = (frame["a"] > 0).astype(int)
    frame["source"] = np.where(np.arange(300) % 2, "vendor_a", "vendor_b")
    data = tmp_path / "s.csv"
    frame.to_csv(data, index=False)
    config = _ledger_config(tmp_path)
    for _ in range(2):  # the second run is the caller's retry after, say, exit 143
        result, _paths = validate(data, config, tmp_path, "--source-column", "source")
        assert result.exit_code in (0, 1), result.stderr
    with L.Ledger(tmp_path / "ledger.db") as store:
        history = store.history()
    assert {s: (h.runs, h.rows) for s, h in history.items()} == {"vendor_a": (1, 150), "vendor_b": (1, 150)}


def test_record_run_is_idempotent_per_batch_key(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "source": ["a", "b"]})
    key = L.batch_key(frame, "source")
    assert key == L.batch_key(frame.copy(), "source")
    assert key != L.batch_key(frame.assign(x=[1.0, 3.0]), "source") != L.batch_key(frame, None)
    with L.Ledger(tmp_path / "l.db") as store:
        assert store.record_run("run1", [L.SourceRecord("a", 10, 1, "ok")], success=True, batch_key=key)
        assert not store.record_run("run2", [L.SourceRecord("a", 10, 1, "ok")], success=True, batch_key=key)
        assert store.record_run("run3", [L.SourceRecord("a", 10, 1, "ok")], success=True, batch_key="other")
        assert store.history()["a"].runs == 2 and store.integrity_problems() == []


def test_a_schema_2_ledger_gains_the_batch_key(tmp_path):
    from sqlalchemy import create_engine, insert, inspect, text

    url = f"sqlite:///{tmp_path / 'v2.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # the runs table as schema version 2 wrote it
        L.schema_version.create(conn)
        conn.execute(text("CREATE TABLE runs (run_id VARCHAR(64) PRIMARY KEY, recorded_at DATETIME NOT NULL, "
                          "data_path VARCHAR(1024), success BOOLEAN NOT NULL, sources INTEGER NOT NULL, "
                          "rows INTEGER NOT NULL)"))
        L.source_runs.create(conn)
        L.source_signal_flags.create(conn)
        for version in (1, 2):
            conn.execute(insert(L.schema_version).values(version=version, applied_at=pd.Timestamp.now("UTC")))
    engine.dispose()
    with L.Ledger(url) as store:
        assert store.version == L.SCHEMA_VERSION == 3
        assert store.record_run("r", [L.SourceRecord("a", 5, 0, "ok")], success=True, batch_key="k")
        assert not store.record_run("r2", [L.SourceRecord("a", 5, 0, "ok")], success=True, batch_key="k")
        assert "batch_key" in {c["name"] for c in inspect(store.engine).get_columns("runs")}


# -- 2. Data Docs on a full disk ---------------------------------------------------------

def test_data_docs_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, config, tmpfs):  # noqa: F811
    data = make_table(tmp_path / "t.csv")
    small = tmpfs("1m")  # the static assets alone are about 1.5 MB
    result, _paths = validate(data, config, small, "--data-docs", str(small / "docs"), outputs=())
    assert_clean_failure(result, {}, "No space left on device")
    assert list(small.iterdir()) == []


def test_data_docs_failing_inside_gx_is_one_line_and_leaves_nothing(tmp_path, config, monkeypatch):
    """GX logs (with a traceback) and skips a page it cannot write: that must still fail the run."""
    from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend

    real, calls = TupleFilesystemStoreBackend._set, []

    def fills_up(self, key, value, **kwargs):
        calls.append(key)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, key, value, **kwargs)

    monkeypatch.setattr(TupleFilesystemStoreBackend, "_set", fills_up)
    data = make_table(tmp_path / "t.csv")
    out = tmp_path / "out"
    out.mkdir()
    result, paths = validate(data, config, out, "--data-docs", str(out / "docs"))
    assert_clean_failure(result, paths, "No space left on device")
    assert list(out.iterdir()) == []


# -- 3. symlink loops ----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["data", "findings", "reference"])
def test_a_symlink_loop_is_a_one_line_input_error(tmp_path, config, where):
    data = make_table(tmp_path / "t.csv")
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    extra = {"data": [], "findings": ["--findings", str(loop)], "reference": ["--reference", str(loop)]}[where]
    result, _paths = validate(loop if where == "data" else data, config, tmp_path, *extra, outputs=())
    assert_clean_failure(result, {}, "loop.csv")
    assert "symbolic links" in result.stderr or "loop" in result.stderr.lower()


# -- 4. unreadable configs -----------------------------------------------------------------

def _load_config_in_a_child(path) -> str:
    """load_config(path) in a child with 1 GB of address space and a timeout
    (the old code read /dev/zero without limit and waited on a FIFO forever)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2 ** 30, 2 ** 30)); "
            "from poison_expectations.core.config import load_config; "
            f"load_config({str(path)!r})")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        return "timed out"
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def test_a_fifo_or_device_config_is_refused_at_once(tmp_path):
    fifo = tmp_path / "c.yml"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        last = _load_config_in_a_child(path)
        assert "ConfigError" in last and "not a regular file" in last and "max_rows" not in last, last


def test_an_oversized_config_is_refused_naming_the_limit(tmp_path):
    path = tmp_path / "big.yml"
    path.write_text("# padding\n" * 200_000)  # 2 MB of comments: valid YAML, not a config
    with pytest.raises(ConfigError, match="big.yml: the config is over 1 MiB"):
        load_config(path)


# -- 7. empty columns and trailing commas --------------------------------------------------

def test_an_empty_feature_column_is_dropped_and_named(tmp_path, config):
    frame = pd.read_csv(make_table(tmp_path / "t.csv"))
    frame.insert(3, "blank", np.nan)
    data = tmp_path / "blank.csv"
    frame.to_csv(data, index=False)
    result, paths = validate(data, config, tmp_path)
    assert result.exit_code in (0, 1), result.stderr
    assert "dropped empty feature columns (no value in any row): blank" in result.stdout
    assert json.loads(paths["report.json"].read_text())["summary"]["dropped_feature_columns"] == ["blank"]
    reject = tmp_path / "reject.yml"
    reject.write_text(FAST + "features:\n  nan_policy: reject\n")
    refused, _paths = validate(data, reject, tmp_path, outputs=())
    assert refused.exit_code == 2 and "feature column 'blank': every value is missing" in refused.stderr


def test_a_trailing_comma_on_every_line_is_not_a_column(tmp_path, config):
    body = make_table(tmp_path / "t.csv").read_text().splitlines()
    data = tmp_path / "commas.csv"
    data.write_text("".join(line + ",\n" for line in body))
    frame = pio.read_table(data)
    assert list(frame.columns) == ["row_id", "a", "b", "c", "d", "label"]
    assert pio.table_columns(data) == list(frame.columns)
    result, _paths = validate(data, config, tmp_path, outputs=())
    assert result.exit_code in (0, 1), result.stderr
    assert "Unnamed" not in result.stdout


def test_an_unnamed_column_with_values_is_kept(tmp_path):
    data = tmp_path / "u.csv"
    data.write_text("a,\n1,2\n3,4\n")
    assert list(pio.read_table(data).columns) == ["a", "Unnamed: 1"]


# -- 8. ledger on a full disk, CSV row limit ----------------------------------------------

def test_a_ledger_that_cannot_be_created_leaves_no_empty_file(tmp_path, monkeypatch):
    def full(self):  # as on a full disk: SQLite created the file, then could write nothing
        sqlite3.connect(tmp_path / "ledger.db").close()
        raise OutputError("ledger: database or disk is full")

    monkeypatch.setattr(L.Ledger, "_migrate", full)
    with pytest.raises(OutputError):
        L.Ledger(tmp_path / "ledger.db")
    assert list(tmp_path.iterdir()) == []


def test_a_ledger_on_a_really_full_disk_leaves_no_empty_file(tmpfs):  # noqa: F811
    small = tmpfs("4k")
    (small / "fill").write_bytes(b"x" * 4096)
    with pytest.raises(OutputError, match="full"):
        L.Ledger(small / "ledger.db")
    assert [p.name for p in small.iterdir()] == ["fill"]


def test_csv_row_limit_counts_records_in_constant_memory(tmp_path):
    data = tmp_path / "q.csv"
    data.write_text('a,b\n1,"two\nlines"\n' + "".join(f"{i},x\n" for i in range(300)))
    assert not pio.csv_records_over(data, 301)  # 302 lines, 301 records: the quoted break is not a row
    assert pio.csv_records_over(data, 300)
    assert not pio.csv_records_over(data, 10_000)  # decided from the size alone
    plain = tmp_path / "p.csv"  # no quote: one record per non-empty line, blank lines skipped
    plain.write_bytes(b"a,b\r\n" + b"".join(b"%d,x\r\n" % i for i in range(300)) + b"\r\n\n")
    assert not pio.csv_records_over(plain, 300) and pio.csv_records_over(plain, 299)
