"""Near-duplicate clusters: floods of copies, conflicting copies, clean data, degenerate tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine

from poison_expectations import testing
from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.config import load_config
from poison_expectations.core.errors import ConfigError, InputError
from poison_expectations.core.fitting import fit_profile
from poison_expectations.gx.runner import run_validation
from poison_expectations.core.signals.near_duplicates import NearDuplicates, default_radius
from poison_expectations.stores.state_codec import plain_data_problems, roundtrip

ND_EXPECTATIONS = {
    "expect_near_duplicate_cluster_share_to_be_at_most",
    "expect_largest_near_duplicate_cluster_to_be_at_most",
    "expect_conflicting_near_duplicate_clusters_to_be_at_most",
}
TABLE_ROLES = Roles(label_column="label", id_column="row_id", source_column="source")


def signal_result(frame, roles=TABLE_ROLES, reference=None, **params):
    analysis = build_analysis(frame, roles, Options(), reference=reference)
    return analysis.result(NearDuplicates(**params))


def near_duplicate_config(**data):
    """Default config with only the near-duplicate family (keeps the tests fast)."""
    overrides = {"expectations.label_consistency.enabled": False}
    overrides.update({f"data.{k}": v for k, v in data.items()})
    return load_config(None, overrides)


def nd_outcomes(outcome) -> dict:
    return {e.expectation: e for e in outcome.expectations if e.expectation in ND_EXPECTATIONS}


@pytest.fixture(scope="module")
def clean_table():
    return testing.make_tabular(2000, random_state=11)


# -- acceptance ------------------------------------------------------------------

def test_flood_of_near_copies_is_flagged_and_fails_the_checkpoint(clean_table):
    poisoned = testing.near_duplicate_flood(clean_table, rate=0.02, n_seeds=3, noise=0.02, random_state=4)
    result = signal_result(poisoned.frame)
    assert result.flags[poisoned.is_poison].all()
    # outside the flood only the 3 seed rows (and at most a natural pair) are flagged
    assert result.flags[~poisoned.is_poison].sum() <= 5
    assert result.summary["largest_cluster"] >= poisoned.n_poison // 3
    ids = poisoned.frame["row_id"].to_numpy()
    flood_clusters = set(result.columns["cluster_id"][poisoned.is_poison])
    assert len(flood_clusters) == 3 and min(flood_clusters) >= 0
    assert "improbable size" in result.reasons[poisoned.is_poison][0]

    config = near_duplicate_config(label_column="label", id_column="row_id", source_column="source")
    outcome = run_validation(poisoned.frame, config)
    assert not outcome.success
    checks = nd_outcomes(outcome)
    assert not checks["expect_near_duplicate_cluster_share_to_be_at_most"].success
    assert not checks["expect_largest_near_duplicate_cluster_to_be_at_most"].success
    share = checks["expect_near_duplicate_cluster_share_to_be_at_most"]
    assert share.unexpected_count >= poisoned.n_poison
    clusters = share.details["cluster_summaries"]
    assert {"size", "labels", "sources", "example_ids"} <= set(clusters[0])
    assert set(clusters[0]["example_ids"]) <= set(ids)
    assert outcome.findings["near_duplicate_score"][poisoned.is_poison].min() >= 0.5


def test_a_few_near_copies_in_a_small_table_are_improbably_tight():
    """Three seeds with two copies each: no cluster size is improbable in 300
    rows, but clusters holding together at a small share of the radius are."""
    table = testing.make_tabular(300, random_state=5)
    poisoned = testing.near_duplicate_flood(table, rate=0.02, n_seeds=3, noise=0.02, random_state=1)
    result = signal_result(poisoned.frame)
    assert result.summary["size_model"]["min_improbable_size"] > 3  # size alone cannot tell
    assert result.flags[poisoned.is_poison].all()
    assert result.flags[~poisoned.is_poison].sum() <= 3  # the seeds
    assert "improbably tight" in result.reasons[poisoned.is_poison][0]
    assert result.summary["size_model"]["intrinsic_dimension"] > 1


@pytest.mark.parametrize("rows", [80, 400, 3000])
def test_clean_continuous_tables_have_no_improbably_tight_cluster(rows):
    from sklearn.datasets import make_classification

    for seed in range(4):
        X, y = make_classification(rows, 3, n_informative=3, n_redundant=0, random_state=seed)
        frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=y)
        result = signal_result(frame, Roles(label_column="label"))
        assert not any(c["improbably_tight"] for c in result.summary["cluster_summaries"]), (rows, seed)
        table = testing.make_tabular(rows, random_state=seed, distribution_seed=seed + 40)
        result = signal_result(table)
        assert not any(c["improbably_tight"] for c in result.summary["cluster_summaries"]), (rows, seed)


def test_same_table_without_flood_passes(clean_table):
    config = near_duplicate_config(label_column="label", id_column="row_id", source_column="source")
    outcome = run_validation(clean_table, config)
    assert outcome.success, [(e.expectation, e.observed_value) for e in outcome.expectations]
    assert set(nd_outcomes(outcome)) == ND_EXPECTATIONS


def test_flipped_copies_are_flagged(clean_table):
    poisoned = testing.conflicting_copies(clean_table, rate=0.01, random_state=6)
    result = signal_result(poisoned.frame)
    assert result.flags[poisoned.is_poison].mean() >= 0.95
    flagged_reasons = result.reasons[poisoned.is_poison & result.flags]
    assert all("conflicting labels" in r for r in flagged_reasons)
    outcome = run_validation(poisoned.frame, near_duplicate_config(label_column="label", id_column="row_id"))
    conflicts = nd_outcomes(outcome)["expect_conflicting_near_duplicate_clusters_to_be_at_most"]
    assert not conflicts.success
    assert conflicts.observed_value > conflicts.details["allowed"]


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine, load_digits, load_iris],
                         ids=["breast_cancer", "wine", "digits", "iris"])
def test_clean_sklearn_datasets_pass(loader):
    frame = loader(as_frame=True).frame
    outcome = run_validation(frame, near_duplicate_config(label_column="target"))
    checks = nd_outcomes(outcome)
    assert all(check.success for check in checks.values()), {k: v.observed_value for k, v in checks.items()}
    assert outcome.results["near_duplicate"].summary["improbable_clusters"] == 0


def test_all_identical_rows_get_a_clear_verdict():
    """A lone batch of copies of one row: reported in full; in a self-check of
    data on a grid (here: nothing but copies) the near-duplicate gates report
    and do not fail (docs/verdicts.md); against a reference they fail."""
    frame = pd.DataFrame({"a": [1.5] * 300, "b": [2] * 300, "c": ["x"] * 300})
    outcome = run_validation(frame, near_duplicate_config())
    checks = nd_outcomes(outcome)
    assert checks["expect_largest_near_duplicate_cluster_to_be_at_most"].observed_value == 300
    assert checks["expect_near_duplicate_cluster_share_to_be_at_most"].observed_value == 1.0
    assert outcome.success
    reference = pd.DataFrame({"a": np.linspace(0, 3, 300), "b": np.arange(300) % 7, "c": ["x", "y"] * 150})
    assert not run_validation(frame, near_duplicate_config(), reference=reference).success
    summary = outcome.results["near_duplicate"].summary
    assert summary["radius_rule"]["method"] == "exact_only" and summary["exact_duplicate_rows"] == 300
    assert "300 rows (100%)" in summary["console_lines"][1]


def test_identical_features_with_two_labels_is_one_conflicting_cluster():
    frame = pd.DataFrame({"a": [1.0] * 40, "b": [3.0] * 40, "label": ["cat"] * 30 + ["dog"] * 10})
    result = signal_result(frame, Roles(label_column="label"))
    assert result.flags.all()
    assert result.summary["conflicting_clusters"] == 1
    assert result.summary["cluster_summaries"][0]["labels"] == {"cat": 30, "dog": 10}
    assert "conflicting labels {'cat': 30, 'dog': 10}" in result.reasons[0]


def test_cli_findings_columns_and_cluster_lines(tmp_path, cli, clean_table):
    poisoned = testing.near_duplicate_flood(clean_table.iloc[:800], rate=0.03, n_seeds=2, random_state=1)
    data = tmp_path / "batch.csv"
    poisoned.frame.to_csv(data, index=False)
    config = tmp_path / "nd.yml"
    config.write_text("expectations:\n  label_consistency:\n    enabled: false\n")
    findings = tmp_path / "findings.csv"
    run = cli("validate", data, "--label", "label", "--id-column", "row_id", "--source-column", "source",
              "--config", config, "--findings", findings)
    assert run.returncode == 1, run.stderr
    assert "Suspicious near-duplicate clusters, largest first" in run.stdout
    cluster_lines = [line for line in run.stdout.splitlines() if line.startswith("  cluster ")]
    assert 2 <= len(cluster_lines) <= 5
    table = pd.read_csv(findings)
    assert {"near_duplicate_score", "cluster_id"} <= set(table.columns)
    assert (table["cluster_id"][poisoned.is_poison] >= 0).all()
    assert (table["cluster_id"] == -1).mean() > 0.9


# -- batch against reference ---------------------------------------------------------

@pytest.fixture(scope="module")
def split_table():
    full = testing.make_tabular(4500, random_state=21)
    return full.iloc[:3000].reset_index(drop=True), full.iloc[3000:].reset_index(drop=True)


def test_batch_rows_copying_reference_rows_with_another_label_are_flagged(split_table):
    reference, batch = split_table
    copies = reference.sample(15, random_state=2).copy()
    copies["label"] = 1 - copies["label"]
    copies["row_id"] = [f"copy{i}" for i in range(15)]
    frame = pd.concat([batch, copies], ignore_index=True)
    is_copy = frame["row_id"].str.startswith("copy").to_numpy()
    result = signal_result(frame, reference=reference)
    # against a reference the flags are the density test's (BH at q); a copy of a trusted row
    # under another label is reported here, and judged by the label-consistency gate
    assert result.summary["reference"]["batch_rows_conflicting_with_reference"] >= 15
    assert result.flags[~is_copy].sum() <= 3


def test_clean_batch_against_reference_passes_and_flood_fails(split_table, tmp_path):
    reference, batch = split_table
    ref_path = tmp_path / "reference.csv"
    reference.to_csv(ref_path, index=False)
    config = near_duplicate_config(label_column="label", id_column="row_id", source_column="source",
                                   reference=str(ref_path))
    config["verdicts"]["min_effect"] = 0.0  # any proven flooded row fails (the default asks for 0.5% of rows)
    assert run_validation(batch, config).success
    poisoned = testing.near_duplicate_flood(batch, rate=0.02, random_state=8)
    outcome = run_validation(poisoned.frame, config)
    share = nd_outcomes(outcome)["expect_near_duplicate_cluster_share_to_be_at_most"]
    verdict = share.details["verdict"]  # the density gate: batch vs reference close pairs
    assert not share.success and verdict["p_value"] <= verdict["alpha"] and verdict["failed"]
    flags = outcome.results["near_duplicate"].flags  # BH at q over the rows' density p-values
    assert flags[poisoned.is_poison].mean() >= 0.5 and (flags & ~poisoned.is_poison).sum() <= 0.2 * flags.sum()


# -- pieces --------------------------------------------------------------------------

def test_default_radius_is_not_pulled_into_a_flood():
    rng = np.random.default_rng(0)
    clean = rng.lognormal(0.0, 0.3, 5000)
    flooded = np.concatenate([clean, rng.uniform(0.001, 0.01, 200)])
    r_clean, _ = default_radius(clean, 0.001)
    r_flooded, info = default_radius(flooded, 0.001)
    assert info["below_fence"] >= 200
    assert abs(r_flooded - r_clean) / r_clean < 0.1
    assert default_radius(np.zeros(100), 0.001)[0] == 0.0
    lattice, info = default_radius(np.r_[np.full(90, 1.0), np.full(10, 0.5)], 0.001)
    assert info["method"] == "lattice" and lattice == 0.5


def test_exact_duplicates_are_found_after_precision_normalisation():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": np.round(rng.normal(10, 2, 500), 2), "b": np.round(rng.normal(0, 1, 500), 3)})
    copy = frame.iloc[[5]].copy()
    copy["a"] = copy["a"] + 1e-9  # float noise below the column's 2 decimals
    frame = pd.concat([frame, copy], ignore_index=True)
    result = signal_result(frame, Roles(), radius=0.0)
    assert result.summary["exact_duplicate_rows"] == 2
    cid = result.columns["cluster_id"]
    assert cid[5] == cid[500] >= 0


def test_ordinary_resubmissions_do_not_alarm(clean_table):
    resubmitted = clean_table.sample(frac=0.04, random_state=3)
    twice = resubmitted.iloc[: len(resubmitted) // 4]
    frame = pd.concat([clean_table, resubmitted, twice], ignore_index=True)
    frame["row_id"] = np.arange(len(frame))
    result = signal_result(frame)
    assert result.summary["clusters"] >= 80
    assert result.summary["improbable_clusters"] == 0 and result.summary["conflicting_clusters"] == 0
    assert result.flagged_count == 0


def test_deterministic_and_absolute_limit(clean_table):
    poisoned = testing.near_duplicate_flood(clean_table, rate=0.02, random_state=4)
    first = signal_result(poisoned.frame, max_cluster_size=5)
    second = signal_result(poisoned.frame, max_cluster_size=5)
    np.testing.assert_array_equal(first.scores, second.scores)
    np.testing.assert_array_equal(first.columns["cluster_id"], second.columns["cluster_id"])
    assert first.summary["cluster_summaries"][0]["over_limit"]
    assert "over the limit of 5 rows" in first.reasons[poisoned.is_poison][0]


def test_bad_parameters_are_errors():
    with pytest.raises(InputError, match="radius_quantile"):
        NearDuplicates(radius_quantile=0.0)
    with pytest.raises(ConfigError, match="expectations.near_duplicates.max_share"):
        load_config(None, {"expectations.near_duplicates.max_share": 2.0})
    config = load_config(None)
    assert config["expectations"]["near_duplicates"]["radius"] is None


# -- fit / score -----------------------------------------------------------------------

def test_score_depends_only_on_the_state_and_the_batch(clean_table):
    reference = clean_table.iloc[:1000].reset_index(drop=True)
    rest = clean_table.iloc[1000:].reset_index(drop=True)
    first = testing.near_duplicate_flood(rest.iloc[:500].reset_index(drop=True), rate=0.04, n_seeds=2,
                                         noise=0.02, random_state=2)
    second = testing.conflicting_copies(rest.iloc[500:].reset_index(drop=True), rate=0.03, random_state=3)
    signal = NearDuplicates()
    one = build_analysis(first.frame, TABLE_ROLES, Options(), reference=reference)
    two = build_analysis(second.frame, TABLE_ROLES, Options(), reference=reference)
    state = signal.fit(one)
    for analysis, poisoned in ((one, first), (two, second)):
        reused = signal.score(state, analysis)
        other = NearDuplicates()
        fresh = other.score(other.fit(analysis), analysis)  # its own state on the same reference
        assert np.array_equal(reused.flags, fresh.flags) and np.array_equal(reused.scores, fresh.scores)
        assert np.array_equal(reused.columns["cluster_id"], fresh.columns["cluster_id"])
        assert reused.summary == fresh.summary
        assert reused.flags[poisoned.is_poison].mean() >= 0.9


def test_reference_scores_are_the_fitted_rows_own_scores(clean_table):
    poisoned = testing.near_duplicate_flood(clean_table, rate=0.02, n_seeds=3, noise=0.02, random_state=4)
    analysis = build_analysis(poisoned.frame, TABLE_ROLES, Options())
    signal = NearDuplicates()
    state = signal.fit(analysis)
    scores = state["reference_scores"]
    assert scores.shape == (len(poisoned.frame),) and np.isfinite(scores).all()
    result = signal.score_fitted(state, analysis)
    assert np.array_equal(scores, result.scores)
    assert scores[poisoned.is_poison].min() >= 0.5
    result.flags[:] = True  # a result's arrays are its own: the state is unchanged
    assert not state["report"]["row_flags"].all()


def test_state_is_plain_data(clean_table):
    poisoned = testing.conflicting_copies(clean_table, rate=0.01, random_state=6)
    signal = NearDuplicates()
    for reference in (None, clean_table.iloc[:500]):
        analysis = build_analysis(poisoned.frame, TABLE_ROLES, Options(), reference=reference)
        state = signal.fit(analysis)
        assert plain_data_problems(state) == []
        fitted_rows = 500 if reference is not None else len(poisoned.frame)
        assert len(state["keys"]) == len(state["reference_scores"]) == fitted_rows
        stored = roundtrip(state)  # as a profile writes and reads it: JSON and .npy, no pickle
        score = signal.score if reference is not None else signal.score_fitted
        assert np.array_equal(score(stored, analysis).flags, score(state, analysis).flags)


def test_a_profile_scores_like_a_reference_run(clean_table):
    reference = clean_table.iloc[:1000].reset_index(drop=True)
    batch = testing.conflicting_copies(clean_table.iloc[1000:].reset_index(drop=True), rate=0.03, random_state=3)
    profile = fit_profile(reference, TABLE_ROLES, Options(), [NearDuplicates()], meta={"plugin_version": "test"})
    with_profile = build_analysis(batch.frame, TABLE_ROLES, Options(), profile=profile).result(NearDuplicates())
    with_reference = build_analysis(batch.frame, TABLE_ROLES, Options(), reference).result(NearDuplicates())
    assert np.array_equal(with_profile.flags, with_reference.flags)
    assert np.array_equal(with_profile.scores, with_reference.scores)
    assert with_profile.summary["reference"] == with_reference.summary["reference"]


def test_self_check_of_grid_data_with_repeated_rows_reports_and_does_not_gate():
    """Integer-coded records (like the keel mammographic, tae, wisconsin tables):
    many exact repeats, some with both labels. No two distinct recorded rows are
    within the radius, so near duplicates are the grain of the data: reported,
    not gated (docs/verdicts.md, self-check)."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({f"x{j}": rng.integers(1, 5, 600) for j in range(4)})
    frame["label"] = np.where(frame.sum(axis=1) + rng.normal(0, 1.5, 600) > 10, "a", "b")
    outcome = run_validation(frame, near_duplicate_config(label_column="label"))
    summary = outcome.results["near_duplicate"].summary
    assert summary["recorded_on_grid"] and summary["exact_duplicate_rows"] > 300
    assert summary["suspicious_rows"] > 0.05 * len(frame)  # conflicting repeats: reported
    assert all(check.success for check in nd_outcomes(outcome).values())


def test_self_check_share_counts_improbable_clusters_not_conflicts_alone(clean_table):
    """Conflicting labels alone are the conflict expectation's (judged against
    chance); the share gate of a self-check counts clusters the clean size
    model calls improbable."""
    poisoned = testing.conflicting_copies(clean_table, rate=0.01, random_state=6)
    outcome = run_validation(poisoned.frame, near_duplicate_config(label_column="label", id_column="row_id"))
    summary = outcome.results["near_duplicate"].summary
    assert not summary["recorded_on_grid"]
    share = nd_outcomes(outcome)["expect_near_duplicate_cluster_share_to_be_at_most"]
    assert share.details["counted_rows"] == summary["improbable_rows"] < summary["suspicious_rows"]
    assert not nd_outcomes(outcome)["expect_conflicting_near_duplicate_clusters_to_be_at_most"].success
