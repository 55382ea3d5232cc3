"""The stored GX project in checkpoints/ runs from a fresh process, and a
suite whose expectations did not load is refused (GX would drop them)."""

import json
import os
import re
import shutil

from conftest import CHECKPOINTS, SAMPLE_DATA

REPO_CHECKPOINTS = str(CHECKPOINTS)
CLEAN = str(SAMPLE_DATA / "train_clean.csv")


def test_stored_checkpoint_runs_in_a_fresh_process(cli):
    clean = cli("run-checkpoint", "training_ingest", "--project", REPO_CHECKPOINTS,
                "--data", CLEAN)
    assert clean.returncode == 0, clean.stderr
    assert "PASS  expect_label_inconsistency_rate_to_be_at_most" in clean.stdout
    flood = cli("run-checkpoint", "training_ingest", "--project", REPO_CHECKPOINTS,
                "--data", str(SAMPLE_DATA / "train_poisoned_flood.csv"))
    assert flood.returncode == 1, flood.stderr
    assert "FAIL  expect_near_duplicate_cluster_share_to_be_at_most" in flood.stdout


def test_unloadable_stored_expectation_is_refused(cli, tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(REPO_CHECKPOINTS + "/gx", project / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    suite_path = project / "gx" / "expectations" / "training_ingest.json"
    suite = json.loads(suite_path.read_text())
    suite["expectations"].append({"type": "expect_rows_to_be_from_a_plugin_not_installed", "kwargs": {},
                                  "meta": {}, "id": "00000000-0000-0000-0000-000000000001"})
    suite_path.write_text(json.dumps(suite))
    run = cli("run-checkpoint", "training_ingest", "--project", project, "--data", CLEAN)
    assert run.returncode == 2
    assert "expect_rows_to_be_from_a_plugin_not_installed" in run.stderr
    assert "Traceback" not in run.stderr


def _project_with_relative_paths(tmp_path):
    """A copy of the stored project whose suite names its reference, and whose
    quarantine action its outputs, relative to the project folder."""
    project = tmp_path / "proj"
    shutil.copytree(REPO_CHECKPOINTS + "/gx", project / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    (project / "data").mkdir()
    shutil.copy(SAMPLE_DATA / "reference.csv", project / "data" / "reference.csv")
    suite_path = project / "gx" / "expectations" / "training_ingest.json"
    suite = json.loads(suite_path.read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_label_inconsistency_rate_to_be_at_most":
            expectation["kwargs"].update(reference="data/reference.csv", method="knn")
    row_level = {"column_list": ["label", *(f"num_{i}" for i in range(8))], "label_column": "label", "method": "knn"}
    suite["expectations"].append({"type": "expect_row_labels_to_be_consistent", "meta": {}, "kwargs": row_level,
                                  "id": "00000000-0000-0000-0000-000000000002"})
    suite_path.write_text(json.dumps(suite))
    checkpoint_path = project / "gx" / "checkpoints" / "training_ingest.json"
    checkpoint = json.loads(checkpoint_path.read_text())
    checkpoint["actions"] = [{"type": "poison_quarantine", "name": "quarantine", "data_path": None,
                              "accepted_path": "out/{run_name}/accepted.csv",
                              "quarantine_path": "out/{run_name}/quarantine.csv"}]
    checkpoint["result_format"] = {"result_format": "SUMMARY", "unexpected_index_column_names": ["row_id"]}
    checkpoint_path.write_text(json.dumps(checkpoint))
    return project


def test_relative_stored_paths_resolve_against_the_project_and_outputs_are_printed(cli, tmp_path):
    project = _project_with_relative_paths(tmp_path)
    run = cli("run-checkpoint", "training_ingest", "--project", project,  # run from another folder
              "--data", str(SAMPLE_DATA / "train_poisoned_flips.csv"))
    assert run.returncode == 1, run.stderr
    written = dict(line.split(": ", 1) for line in run.stdout.splitlines() if line.split(":")[0] in
                   ("accepted", "quarantine"))
    assert set(written) == {"accepted", "quarantine"}
    for path in written.values():
        assert path.startswith(str(project.resolve() / "out")) and os.path.isfile(path)
    (label,) = [line for line in run.stdout.splitlines() if "expect_label_inconsistency_rate" in line]
    # against its reference the label gate is a test (its limit: level, minimum effect, FDR of the flags)
    assert "limit " in label and "gate_alpha=" in label and "fdr_q=" in label and "unexpected " in label
    for number in re.findall(r"\d+\.\d+", run.stdout):  # rounded: 0.01367, not 0.013666666666666667
        assert len(number.replace(".", "").lstrip("0")) <= 4, number
    (rows,) = [line for line in run.stdout.splitlines() if "expect_row_labels_to_be_consistent" in line]
    assert "observed None" not in rows and "limit mostly=0.9" in rows and re.search(r"rows r\d{6}", rows)

    (project / "data" / "reference.csv").unlink()
    missing = cli("run-checkpoint", "training_ingest", "--project", project, "--data", CLEAN)
    assert missing.returncode == 2 and "reference data/reference.csv not found" in missing.stderr
    assert str(project.resolve() / "data" / "reference.csv") in missing.stderr
