"""The stored GX project in checkpoints/ runs from a fresh process, and a
suite whose expectations did not load is refused (GX would drop them)."""

import json
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
