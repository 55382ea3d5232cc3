"""The `poison-check validate` contract: exit codes, outputs, bad input."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE_DATA

SAMPLE = str(SAMPLE_DATA)
ARGS = ["--label", "label", "--id-column", "row_id", "--source-column", "source", "--quiet"]


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_clean_sample_passes_with_default_config(cli):
    run = cli("validate", f"{SAMPLE}/train_clean.csv", *ARGS)
    assert run.returncode == 0, run.stderr
    assert "PASSED" in run.stdout.splitlines()[0]
    assert "expect_label_inconsistency_rate_to_be_at_most" in run.stdout


def test_poisoned_batch_fails_against_reference_with_outputs(cli, tmp_path):
    data = f"{SAMPLE}/train_poisoned_source.csv"  # one source supplies flipped labels
    before = _digest(data)
    findings, report = tmp_path / "findings.csv", tmp_path / "report.json"
    run = cli("validate", data, *ARGS, "--reference", f"{SAMPLE}/reference.csv",
              "--findings", findings, "--report", report)
    assert run.returncode == 1, run.stderr
    assert "FAIL  expect_label_inconsistency_rate_to_be_at_most" in run.stdout
    assert "FAIL  expect_source_flagged_rates_to_not_exceed_rest" in run.stdout
    assert "Most suspicious rows" in run.stdout
    assert _digest(data) == before

    table = pd.read_csv(findings)
    source = pd.read_csv(data)
    assert list(table.columns[:3]) == ["row_id", "poison_score", "flagged"]
    assert "label_consistency_score" in table.columns and table.columns[-1] == "reasons"
    assert table["row_id"].tolist() == source["row_id"].tolist()
    assert table["poison_score"].between(0, 1).all()
    assert (table["reasons"].fillna("") != "").eq(table["flagged"]).all()
    truth = pd.read_csv(f"{SAMPLE}/truth/train_poisoned_source.csv")
    merged = table.merge(truth, on="row_id")
    # the bad source is named and its rows held back (its clean rows with them): every flipped
    # row, and few clean rows of the other sources
    recall = merged.loc[merged.is_poison, "flagged"].mean()
    false_flags = merged.loc[~merged.is_poison, "flagged"].mean()
    assert recall >= 0.9 and false_flags <= 0.05

    document = json.loads(report.read_text())
    summary = document["summary"]
    assert summary["schema_version"] == 1 and summary["success"] is False
    assert {"expect_label_inconsistency_rate_to_be_at_most",
            "expect_source_flagged_rates_to_not_exceed_rest"} <= set(summary["failed_expectations"])
    assert summary["flagged_rows"] == int(table["flagged"].sum())
    assert document["checkpoint_result"]["success"] is False
    assert not list(tmp_path.glob(".*.tmp"))


def test_row_index_without_id_column_and_parquet_findings(cli, tmp_path):
    findings = tmp_path / "f.parquet"
    run = cli("validate", f"{SAMPLE}/train_clean.parquet", "--label", "label", "--quiet", "--findings", findings,
              "--features", ",".join([f"num_{i}" for i in range(8)] + ["cat_0", "cat_1"]))
    assert run.returncode == 0, run.stderr
    table = pd.read_parquet(findings)
    assert table["row_index"].tolist() == list(range(3000))


def test_json_format_prints_the_summary(cli):
    run = cli("validate", f"{SAMPLE}/train_clean.csv", *ARGS, "--format", "json")
    assert run.returncode == 0
    assert json.loads(run.stdout)["rows"] == 3000


def _table(tmp_path, name="data.csv", rows=60, **changes):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row_id": range(rows), "a": rng.normal(size=rows), "b": rng.normal(size=rows),
                          "label": rng.integers(0, 2, rows)})
    for column, values in changes.items():
        frame[column] = values
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


BAD_INPUTS = {
    "missing file": (lambda p: p / "nope.csv", [], "not found"),
    "unknown extension": (lambda p: (p / "data.txt").write_text("a,b\n") and p / "data.txt", [], "extension"),
    "corrupt parquet": (lambda p: (p / "x.parquet").write_bytes(b"PAR1garbage") and p / "x.parquet", [], "cannot read"),
    "missing label column": (lambda p: _table(p), ["--label", "nolabel"], "'nolabel'"),
    "missing id column": (lambda p: _table(p), ["--label", "label", "--id-column", "nid"], "'nid'"),
    "missing feature column": (lambda p: _table(p), ["--label", "label", "--features", "a,zz"], "'zz'"),
    "duplicate ids": (lambda p: _table(p, row_id=[1] * 60), ["--label", "label", "--id-column", "row_id"],
                      "duplicate ids"),
    "empty table": (lambda p: (p / "e.csv").write_text("a,label\n") and p / "e.csv", ["--label", "label"],
                    "no rows"),
    "fewer rows than k+1": (lambda p: _table(p, rows=8), ["--label", "label"], "k+1"),
    "single class": (lambda p: _table(p, label=[3] * 60), ["--label", "label"], "single class"),
    "every feature empty": (lambda p: _table(p, a=[np.nan] * 60, b=[np.nan] * 60),
                            ["--label", "label", "--id-column", "row_id"], "every feature column is empty (a, b)"),
    "text in numeric column": (lambda p: _table(p, a=["1.0"] * 59 + ["garbage"]), ["--label", "label"],
                               "'garbage'"),
    "continuous label": (lambda p: _table(p, label=np.linspace(0, 1, 60) + 0.001), ["--label", "label"],
                         "continuous"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(cli, tmp_path, case):
    make, extra, needle = BAD_INPUTS[case]
    path = make(tmp_path)
    before = _digest(path) if path.exists() else None
    run = cli("validate", path, "--quiet", *extra, "--findings", tmp_path / "out.csv")
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.csv").exists()
    if before:
        assert _digest(path) == before


@pytest.mark.parametrize("body, needle", [
    ("expectations:\n  label_consistency:\n    bogus: 1\n", "expectations.label_consistency.bogus"),
    ("neighbors:\n  k: ten\n", "neighbors.k"),
    ("expectations:\n  label_consistency:\n    max_rate: 1.5\n", "max_rate"),
    ("expectations:\n  label_consistency:\n    max_rate: -0.1\n", "max_rate"),
    ("unknown_top: true\n", "unknown_top"),
    ("data: [1, 2\n", "invalid YAML"),
])
def test_bad_config_exits_2_naming_the_key(cli, tmp_path, body, needle):
    config = tmp_path / "c.yml"
    config.write_text(body)
    run = cli("validate", f"{SAMPLE}/train_clean.csv", *ARGS, "--config", config)
    assert run.returncode == 2
    assert needle in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_refuses_to_overwrite_the_input(cli, tmp_path):
    data = _table(tmp_path)
    before = _digest(data)
    run = cli("validate", data, "--label", "label", "--findings", data)
    assert run.returncode == 2 and "overwrite" in run.stderr
    assert _digest(data) == before
