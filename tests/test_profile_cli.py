"""`poison-check fit`, `profile show` and `validate --profile` as a user runs them."""

from __future__ import annotations

import zipfile

import pytest

from conftest import SAMPLE_DATA

ROLES = ("--label", "label", "--id-column", "row_id", "--source-column", "source")


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    from conftest import run_cli

    path = tmp_path_factory.mktemp("profile") / "reference.profile"
    run = run_cli("fit", SAMPLE_DATA / "reference.csv", *ROLES, "--out", path, "--quiet")
    assert run.returncode == 0, run.stderr
    assert "fitted signals" in run.stdout and "label_consistency" in run.stdout
    return path


def test_profile_show_names_what_it_holds(cli, profile):
    run = cli("profile", "show", profile)
    assert run.returncode == 0, run.stderr
    assert "3000 rows" in run.stdout and "label 'label'" in run.stdout
    for signal in ("label_consistency", "near_duplicate", "influence", "outlier", "sources"):
        assert f"    {signal}:" in run.stdout


def test_validate_with_a_profile_passes_clean_and_fails_poisoned(cli, profile):
    clean = cli("validate", SAMPLE_DATA / "train_clean.csv", "--profile", profile, "--quiet")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    flips = cli("validate", SAMPLE_DATA / "train_poisoned_flips.csv", "--profile", profile, "--quiet")
    assert flips.returncode == 1, flips.stdout + flips.stderr
    assert "expect_label_inconsistency_rate_to_be_at_most" in flips.stdout


def test_a_damaged_profile_is_one_line_exit_2(cli, profile, tmp_path):
    damaged = tmp_path / "damaged.profile"
    with zipfile.ZipFile(profile) as source, zipfile.ZipFile(damaged, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data[:-1] + bytes([data[-1] ^ 1]) if name == "reference/X.npy" else data)
    run = cli("validate", SAMPLE_DATA / "train_clean.csv", "--profile", damaged)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "reference/X.npy was altered" in run.stderr


def test_a_batch_of_another_schema_is_one_line_exit_2(cli, profile, tmp_path):
    import pandas as pd

    batch = pd.read_csv(SAMPLE_DATA / "train_clean.csv").drop(columns=["num_3"])
    path = tmp_path / "other.csv"
    batch.to_csv(path, index=False)
    run = cli("validate", path, "--profile", profile)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "feature column 'num_3' of the profile not found" in run.stderr
