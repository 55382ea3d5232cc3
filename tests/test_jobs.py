"""jobs.py: the validation job shared by the CLI and the Airflow operator."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from poison_expectations.core.errors import ConfigError, InputError, PoisonCheckError
from poison_expectations.apps.jobs import check_outputs, job_config, run_job


def _config_file(tmp_path, text: str):
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_override_the_file_and_none_keeps_it(tmp_path):
    path = _config_file(tmp_path, "data:\n  label_column: y\n  id_column: rid\nneighbors:\n  k: 7\n")
    config = job_config(path, label_column="target", id_column=None,
                        overrides={"neighbors.k": 12, "data.label_column": "ignored"})
    assert config["data"]["label_column"] == "target"  # the named flag wins over overrides
    assert config["data"]["id_column"] == "rid"  # None: the file's value stays
    assert config["neighbors"]["k"] == 12


def test_bad_override_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="neighbors.k"):
        job_config(None, overrides={"neighbors.k": "many"})


def test_outputs_never_overwrite_the_input_or_each_other(tmp_path):
    data = tmp_path / "batch.csv"
    with pytest.raises(PoisonCheckError, match="refusing to overwrite the input"):
        check_outputs(data, {"quarantine": data})
    with pytest.raises(PoisonCheckError, match="both the findings and the accepted"):
        check_outputs(data, {"findings": tmp_path / "x.csv", "accepted": tmp_path / "x.csv"})
    with pytest.raises(InputError, match="unknown file extension"):
        check_outputs(data, {"accepted": tmp_path / "x.txt"})
    with pytest.raises(PoisonCheckError, match=r"keep the input's format \(csv\)"):
        check_outputs(data, {"quarantine": tmp_path / "q.parquet"})
    check_outputs(data, {"report": tmp_path / "report.json", "findings": None})


def test_run_job_writes_split_findings_and_report_and_leaves_the_input(tmp_path, separable):
    frame, flipped = separable(n=600, flip_rate=0.1, seed=3)
    data = tmp_path / "batch.csv"
    frame.to_csv(data, index=False)
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in
               (("findings", "csv"), ("report", "json"), ("accepted", "csv"), ("quarantine", "csv"))}
    config = job_config(None, label_column="label", id_column="row_id",
                        overrides={"expectations.label_consistency.method": "knn"})  # fast: I/O is under test
    outcome, written = run_job(data, config, outputs)

    assert written == {name: str(path) for name, path in outputs.items()}
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
    findings = pd.read_csv(outputs["findings"])
    accepted = pd.read_csv(outputs["accepted"])
    quarantined = pd.read_csv(outputs["quarantine"])
    assert len(accepted) + len(quarantined) == len(frame) == len(findings)
    assert list(accepted.columns) == list(frame.columns)
    assert list(quarantined.columns) == list(frame.columns) + ["poison_score", "reasons"]
    flagged_ids = set(findings.loc[findings["flagged"], "row_id"])
    assert set(quarantined["row_id"]) == flagged_ids and not flagged_ids & set(accepted["row_id"])
    assert (quarantined["reasons"].str.len() > 0).all()
    # the quarantine holds mostly the flipped rows
    flipped_ids = set(frame.loc[flipped, "row_id"])
    assert len(flagged_ids & flipped_ids) >= 0.8 * len(flipped_ids)
    report = json.loads(outputs["report"].read_text())
    assert report["summary"]["flagged_rows"] == outcome.flagged_count == len(quarantined)
    assert report["checkpoint_result"]["success"] == outcome.success
