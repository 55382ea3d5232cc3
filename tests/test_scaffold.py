"""`poison-check init`: a GX file-context project that both `poison-check
run-checkpoint` and plain GX code run; adding to an existing project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from poison_expectations.core.errors import ConfigError, InputError
from poison_expectations.apps.jobs import job_config
from poison_expectations.apps.scaffold import ProjectNames, scaffold

REPO = Path(__file__).resolve().parents[1]
CLEAN, FLIPS = REPO / "sample_data" / "train_clean.csv", REPO / "sample_data" / "train_poisoned_flips.csv"
ROLES = ["--label", "label", "--id-column", "row_id", "--source-column", "source"]

PLAIN_GX = """
import sys
import great_expectations as gx
import pandas as pd
import poison_expectations  # registers our expectation and action types
context = gx.get_context(mode="file", project_root_dir=sys.argv[1])
result = context.checkpoints.get(sys.argv[2]).run(batch_parameters={"dataframe": pd.read_csv(sys.argv[3])})
print("SUCCESS" if result.success else "FAILURE")
"""


def _fast(tmp_path) -> Path:
    path = tmp_path / "fast.yml"
    path.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    return path


def test_init_then_run_checkpoint_and_plain_gx(cli, tmp_path):
    project = tmp_path / "project"
    made = cli("init", CLEAN, "--project", project, "--name", "ingest", *ROLES, "--reference",
               REPO / "sample_data" / "reference.csv", "--config", _fast(tmp_path),
               "--quarantine", tmp_path / "held" / "{run_name}.csv")
    assert made.returncode == 0, made.stderr
    assert "poison-check run-checkpoint ingest" in made.stdout
    suite = json.loads((project / "gx" / "expectations" / "ingest.json").read_text())
    (expectation,) = [e for e in suite["expectations"] if e["type"] == "expect_label_inconsistency_rate_to_be_at_most"]
    for key in ("max_rate", "max_excess_over_reference", "alpha", "method", "k", "n_folds", "random_state"):
        assert key in expectation["kwargs"]  # thresholds stored explicitly
    assert Path(expectation["kwargs"]["reference"]).is_absolute()
    checkpoint = json.loads((project / "gx" / "checkpoints" / "ingest.json").read_text())
    assert checkpoint["actions"][0]["type"] == "poison_quarantine"

    poisoned = cli("run-checkpoint", "ingest", "--project", project, "--data", FLIPS)
    assert poisoned.returncode == 1, poisoned.stderr
    assert "FAIL  expect_label_inconsistency_rate_to_be_at_most" in poisoned.stdout
    (held,) = (tmp_path / "held").glob("*.csv")  # the action ran, in the input's format
    quarantined = pd.read_csv(held)
    assert list(quarantined.columns[-2:]) == ["poison_score", "reasons"]
    # the rows named at FDR q (possibly none: docs/verdicts.md), each with its reason
    assert set(quarantined["row_id"]) <= set(pd.read_csv(FLIPS)["row_id"])
    assert quarantined["reasons"].astype(str).str.len().gt(0).all()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    plain = subprocess.run([sys.executable, "-c", PLAIN_GX, str(project), "ingest", str(CLEAN)], env=env,
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.strip().endswith("SUCCESS"), plain.stderr[-2000:]


def test_init_adds_to_an_existing_project_and_refuses_to_clobber(tmp_path):
    project = tmp_path / "project"
    config = job_config(_fast(tmp_path), label_column="label", id_column="row_id")
    first = scaffold(project, CLEAN, config, ProjectNames(checkpoint="first"))
    second = scaffold(project, CLEAN, config, ProjectNames(checkpoint="second"))
    assert first["asset"] != second["asset"]
    stored = {p.stem for p in (project / "gx" / "checkpoints").glob("*.json")}
    assert stored == {"first", "second"}
    with pytest.raises(ConfigError, match="already exists.*--force"):
        scaffold(project, CLEAN, config, ProjectNames(checkpoint="first"))
    stricter = job_config(_fast(tmp_path), label_column="label", id_column="row_id",
                          overrides={"expectations.label_consistency.max_rate": 0.03})
    scaffold(project, CLEAN, stricter, ProjectNames(checkpoint="first"), replace=True)
    suite = json.loads((project / "gx" / "expectations" / "first.json").read_text())
    assert [e["kwargs"]["max_rate"] for e in suite["expectations"]
            if e["type"] == "expect_label_inconsistency_rate_to_be_at_most"] == [0.03]


def test_init_checks_the_data_against_the_roles(tmp_path):
    config = job_config(None, label_column="no_such_column")
    with pytest.raises(InputError, match="'no_such_column' not found"):
        scaffold(tmp_path / "p", CLEAN, config, ProjectNames(checkpoint="x"))
    assert not (tmp_path / "p").exists()  # nothing written before the data was checked
