"""The retrain-guard DAG under real Airflow: metadata DB migrated, `dag.test()`
on clean, poisoned and unreadable batches; DagRun and TaskInstance states,
XCom and output files checked.

Airflow runs in a subprocess (tests/airflow_dag_run.py) with AIRFLOW_HOME in
a temporary folder: Airflow reads its home and config at first import and
reconfigures logging, which must not leak into the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

if importlib.util.find_spec("airflow") is None:
    pytest.skip("Apache Airflow is not installed; install the extra: pip install -e '.[test,airflow]'",
                allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
DAG_FOLDER = REPO / "checkpoints" / "airflow"
SAMPLE_COLUMNS = {"label": "label", "id_column": "row_id", "source_column": ""}


def guard_config(folder: Path) -> Path:
    """The packaged default with only label consistency on, neighbour method.

    The DAG, the operator and the XCom contract are under test here, not the
    detectors (they have their own tests); the kNN method keeps each run to
    seconds on a busy 2-core machine and still separates the sample files.
    """
    from poison_expectations.core.config import load_config

    config = load_config()
    for name, section in config["expectations"].items():
        section["enabled"] = name == "label_consistency"
    config["expectations"]["label_consistency"]["method"] = "knn"
    path = folder / "guard.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dag_runs(tmp_path_factory):
    """Run the DAG three times in one Airflow process; {case: result}."""
    home = tmp_path_factory.mktemp("airflow_home")
    out = home / "guard_out"
    common = {**SAMPLE_COLUMNS, "reference": str(SAMPLE / "reference.csv"),
              "config": str(guard_config(home)), "output_dir": str(out)}
    cases = [
        {"name": "clean", "conf": {**common, "data_path": str(SAMPLE / "train_clean.csv")}},
        {"name": "poisoned", "conf": {**common, "data_path": str(SAMPLE / "train_poisoned_flips.csv")}},
        {"name": "missing", "conf": {**common, "data_path": str(home / "no_such_batch.csv")}},
    ]
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "airflow_dag_run.py"), json.dumps(cases)],
                          cwd=home, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT:"):
            result = json.loads(line[len("RESULT:"):])
            results[result["name"]] = result
    assert set(results) == {"clean", "poisoned", "missing"}, log[-4000:]
    assert (home / "airflow.db").is_file(), "the SQLite metadata DB was not created in AIRFLOW_HOME"
    return results, log


def test_clean_batch_passes_and_retrains(dag_runs):
    run = dag_runs[0]["clean"]
    assert run["dag_run_state"] == "success"
    assert run["task_states"] == {"validate": "success", "retrain": "success",
                                  "quarantine": "skipped", "notify": "skipped"}
    record = run["record"]
    assert record["verdict"] == "passed"
    assert record["failed_expectations"] == []
    assert record["rows"] == 3000
    assert 0 <= record["flagged_rows"] < 0.05 * 3000
    assert record["summary"]["success"] is True
    assert {"findings.csv", "report.json", "accepted.csv", "quarantine.csv", "model.joblib"} <= set(run["files"])
    assert "HOLD.json" not in run["files"]


def test_poisoned_batch_fails_the_run_and_is_quarantined(dag_runs):
    run = dag_runs[0]["poisoned"]
    assert run["dag_run_state"] == "failed"
    assert run["task_states"] == {"validate": "failed", "retrain": "upstream_failed",
                                  "quarantine": "success", "notify": "success"}
    record = run["record"]
    assert record["verdict"] == "poisoned"
    assert record["failed_expectations"] == ["expect_label_inconsistency_rate_to_be_at_most"]
    # the batch fails its label gate; rows are quarantined only where a set of them can be named
    # at the FDR q (BH over the rows' p-values), which may be none of them
    assert "HOLD.json" in run["files"] and "model.joblib" not in run["files"]
    folder = Path(record["outputs"]["quarantine"]).parent
    hold = json.loads((folder / "HOLD.json").read_text())
    assert hold["flagged_rows"] == record["flagged_rows"]
    assert hold["batch"].endswith("train_poisoned_flips.csv")
    quarantined = (folder / "quarantine.csv").read_text().splitlines()
    accepted = (folder / "accepted.csv").read_text().splitlines()
    assert len(quarantined) - 1 == record["flagged_rows"]
    assert len(quarantined) + len(accepted) - 2 == 3000
    assert quarantined[0].endswith(",poison_score,reasons")


def test_each_outcome_key_is_pushed_to_xcom(dag_runs):
    for name in ("clean", "poisoned", "missing"):
        keys = set(dag_runs[0][name]["xcom_keys"])
        expected = {f"validate.{k}" for k in ("poison_check", "verdict", "failed_expectations", "flagged_rows",
                                               "rows", "outputs", "error", "summary")}
        assert expected <= keys, (name, sorted(keys))
    outputs = dag_runs[0]["poisoned"]["record"]["outputs"]
    assert set(outputs) == {"findings", "report", "accepted", "quarantine"}
    assert all(Path(p).is_file() for p in outputs.values())


def test_input_error_fails_without_quarantine_and_says_so(dag_runs):
    results, log = dag_runs
    run = results["missing"]
    assert run["dag_run_state"] == "failed"
    assert run["task_states"] == {"validate": "failed", "retrain": "upstream_failed",
                                  "quarantine": "skipped", "notify": "skipped"}
    assert run["record"]["verdict"] == "input_error"
    assert "no_such_batch.csv: file not found" in run["record"]["error"]
    assert "INPUT ERROR (not poisoning" in log
    assert "POISONING DETECTED in" in log and "train_poisoned_flips.csv" in log


def test_package_does_not_import_airflow():
    """Only poison_expectations.apps.airflow may need the extra."""
    code = ("import sys, poison_expectations, poison_expectations.apps.cli, poison_expectations.apps.jobs; "
            "print(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


COPIED_DAG = """
import importlib.util, logging, sys
logging.basicConfig(level=logging.INFO)  # as an Airflow task log records INFO
spec = importlib.util.spec_from_file_location("copied_guard", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import faiss  # noqa: F401  (the kNN search loads it in a task)
from airflow.sdk.definitions.param import ParamValidationError
params = module.dag.params
print("DEFAULTS", {k: params[k] for k in params if k not in ("data_path", "label")})
try:
    params.validate()
except ParamValidationError as exc:
    print("REFUSED", exc)
"""


def test_a_copied_dag_needs_only_its_batch_and_label_and_logs_no_library_noise(tmp_path):
    """Copied out of the repository (as docs/airflow.md says), the DAG has no
    default pointing at sample data: a run without data_path or label is
    refused naming the param; and importing it logs no GX/faiss INFO chatter."""
    dags = tmp_path / "dags"
    dags.mkdir()
    copy = dags / "retrain_guard_dag.py"
    copy.write_text((DAG_FOLDER / "retrain_guard_dag.py").read_text())
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", COPIED_DAG, str(copy)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "REFUSED" in run.stdout and "data_path" in run.stdout.split("REFUSED", 1)[1]
    defaults = run.stdout.split("DEFAULTS", 1)[1].split("\n", 1)[0]
    assert "sample_data" not in defaults and str(REPO) not in defaults
    log = run.stdout + run.stderr
    assert "Skipping registering function" not in log
    assert "Could not load library" not in log and "ModuleNotFoundError" not in log
