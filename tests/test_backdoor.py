"""Backdoor and clean-label signals: trigger patterns, spectral signatures,
feature clustering, clean-label collision; their expectations and CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_predict
from threadpoolctl import threadpool_limits

from poison_expectations import testing
from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.config import defaults, validate
from poison_expectations.core.errors import InputError
from poison_expectations.core.registry import families
from poison_expectations.core.signals.feature_clustering import FeatureClustering
from poison_expectations.core.signals.collision import CleanLabelCollision, tight_groups
from poison_expectations.core.signals.spectral import SpectralSignatures
from poison_expectations.core.signals.triggers import TriggerPatterns

MINE = ("spectral_signatures", "feature_clustering", "trigger_patterns", "clean_label_collision")


def analysis_of(frame, reference=None, embedding=False):
    roles = Roles(label_column="label", id_column="row_id",
                  source_column="source" if "source" in frame.columns else None,
                  embedding_columns=("emb",) if embedding else ())
    return build_analysis(frame, roles, Options(), reference=reference)


def sklearn_frame(name):
    data = getattr(datasets, f"load_{name}")()
    frame = pd.DataFrame(data.data, columns=[f"x{i}" for i in range(data.data.shape[1])])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["label"] = data.target
    return frame


@pytest.fixture(scope="module")
def backdoored():
    clean = testing.make_tabular(2000, n_classes=2, random_state=3)
    return clean, testing.backdoor(clean, rate=0.05, random_state=3)


# -- trigger patterns ----------------------------------------------------------------

def test_trigger_names_the_backdoor_pattern_and_flags_its_rows(backdoored):
    _, poisoned = backdoored
    result = analysis_of(poisoned.frame).result(TriggerPatterns())
    patterns = result.summary["patterns"]
    assert len(patterns) == 1
    found = {item["column"]: item for item in patterns[0]["pattern"]}
    for column, value in poisoned.details["trigger"].items():
        assert column in found
        if "value" in found[column]:
            assert found[column]["value"] == pytest.approx(value)
        else:
            assert found[column]["low"] <= value < found[column]["high"]
    assert patterns[0]["label"] == poisoned.details["target"]
    assert result.flags[poisoned.is_poison].mean() >= 0.9
    assert (result.flags & ~poisoned.is_poison).sum() <= 5
    assert result.summary["console_lines"] and "->" in result.summary["console_lines"][1]
    assert (result.columns["trigger_pattern"][result.flags] == patterns[0]["text"]).all()


def test_trigger_against_a_reference(backdoored):
    clean, poisoned = backdoored
    reference = testing.make_tabular(2000, n_classes=2, random_state=103, distribution_seed=3)
    result = analysis_of(poisoned.frame, reference).result(TriggerPatterns())
    assert len(result.summary["patterns"]) == 1
    assert result.flags[poisoned.is_poison].mean() >= 0.9
    assert analysis_of(clean, reference).result(TriggerPatterns()).summary["patterns"] == []


def test_trigger_on_ten_percent_of_rows_plus_natural_carriers_is_found():
    """Pixel values are coarse, so many clean digits already carry parts of the
    trigger: at a 10% poison rate the pattern holds over 10% of the rows and
    must still count as rare."""
    clean = sklearn_frame("digits")
    poisoned = testing.backdoor(clean, rate=0.10, random_state=0)
    result = analysis_of(poisoned.frame).result(TriggerPatterns())
    assert len(result.summary["patterns"]) == 1
    assert result.summary["patterns"][0]["support"] > 0.1 * len(poisoned.frame)
    assert result.flags[poisoned.is_poison].mean() >= 0.9


def test_trigger_found_as_a_pair_of_plausible_values():
    """Two categorical levels, each held by 5% of rows (so neither alone predicts
    the label), jointly stamped on 5% of rows."""
    clean = testing.make_tabular(2000, n_classes=2, n_categorical=0, random_state=5)
    rng = np.random.default_rng(5)
    clean["colour"] = rng.choice(["red", "green", "blue"], p=[0.05, 0.55, 0.4], size=len(clean))
    clean["shape"] = rng.choice(["round", "square", "flat"], p=[0.5, 0.45, 0.05], size=len(clean))
    rows = rng.choice(np.flatnonzero(clean["label"] == 0), size=100, replace=False)
    poisoned = clean.copy()
    poisoned.loc[rows, ["colour", "shape"]] = ["red", "flat"]
    poisoned.loc[rows, "label"] = 1
    result = analysis_of(poisoned).result(TriggerPatterns())
    assert len(result.summary["patterns"]) == 1
    text = result.summary["patterns"][0]["text"]
    assert "colour = 'red'" in text and "shape = 'flat'" in text
    red = poisoned["colour"] == "red"
    assert poisoned.loc[red, "label"].eq(1).mean() < 0.95  # the single value alone is no trigger
    truth = np.zeros(len(poisoned), dtype=bool)
    truth[rows] = True
    assert result.flags[truth].mean() >= 0.9


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris"])
def test_trigger_passes_clean_sklearn_data(name):
    assert analysis_of(sklearn_frame(name)).result(TriggerPatterns()).summary["patterns"] == []


def test_trigger_is_deterministic(backdoored):
    _, poisoned = backdoored
    first = analysis_of(poisoned.frame).result(TriggerPatterns(random_state=7))
    second = analysis_of(poisoned.frame).result(TriggerPatterns(random_state=7))
    assert np.array_equal(first.flags, second.flags)
    assert first.summary["patterns"][0]["text"] == second.summary["patterns"][0]["text"]


# -- spectral signatures and feature clustering --------------------------------------

def test_spectral_flags_the_embedding_backdoor_class_only():
    frame, truth = testing.make_embedding_backdoor()
    result = analysis_of(frame, embedding=True).result(SpectralSignatures())
    assert result.summary["suspicious_classes"] == [0]
    assert result.summary["representation"] == "embedding:emb"
    assert result.flags[truth].mean() >= 0.9
    class0 = int((frame["label"] == 0).sum())
    assert result.flagged_count == int(np.ceil(1.5 * 0.1 * class0))  # Tran et al.: top 1.5 eps n_y
    clean, _ = testing.make_embedding_backdoor(poison=False)
    assert analysis_of(clean, embedding=True).result(SpectralSignatures()).flagged_count == 0


def test_spectral_against_a_reference():
    frame, truth = testing.make_embedding_backdoor()
    reference, _ = testing.make_embedding_backdoor(poison=False, sample_seed=9)
    result = analysis_of(frame, reference, embedding=True).result(SpectralSignatures())
    assert result.summary["suspicious_classes"] == [0]
    # against a reference the flags are Benjamini-Hochberg at q = 0.1 over split-conformal p-values
    assert result.flags[truth].mean() >= 0.8
    assert (result.flags & ~truth).sum() <= 0.15 * result.flags.sum()
    clean, _ = testing.make_embedding_backdoor(poison=False, sample_seed=10)
    assert analysis_of(clean, reference, embedding=True).result(SpectralSignatures()).flagged_count == 0


def test_clustering_flags_the_embedding_backdoor_cluster():
    frame, truth = testing.make_embedding_backdoor()
    result = analysis_of(frame, embedding=True).result(FeatureClustering())
    assert result.summary["suspicious_classes"] == [0]
    assert result.flags[truth].mean() >= 0.9
    assert (result.flags & ~truth).sum() <= 0.1 * truth.sum()
    reference, _ = testing.make_embedding_backdoor(poison=False, sample_seed=9)
    with_ref = analysis_of(frame, reference, embedding=True).result(FeatureClustering())
    assert with_ref.summary["suspicious_classes"] == [0]
    clean, _ = testing.make_embedding_backdoor(poison=False)
    assert analysis_of(clean, embedding=True).result(FeatureClustering()).flagged_count == 0


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris", "digits"])
def test_spectral_and_clustering_pass_clean_sklearn_data(name):
    analysis = analysis_of(sklearn_frame(name))
    assert analysis.result(SpectralSignatures()).flagged_count == 0
    assert analysis.result(FeatureClustering()).flagged_count == 0


def test_embedding_representation_needs_embedding_columns(backdoored):
    _, poisoned = backdoored
    with pytest.raises(InputError, match="embedding"):
        analysis_of(poisoned.frame).result(SpectralSignatures(representation="embedding"))


# -- clean-label collision -----------------------------------------------------------

@pytest.fixture(scope="module")
def collided():
    return confident_collision()


def confident_collision():
    """(clean, poisoned): 3% rows collided onto a row its class is sure of (out-of-fold p > 0.97)."""
    clean = testing.make_tabular(2000, n_classes=2, random_state=6)
    X = clean[[c for c in clean.columns if c.startswith("num_")]].to_numpy(dtype=float)
    y = clean["label"].to_numpy()
    with threadpool_limits(limits=1):
        proba = cross_val_predict(HistGradientBoostingClassifier(max_iter=50, random_state=0), X, y, cv=3,
                                  method="predict_proba")
    target = int(np.flatnonzero(proba[np.arange(len(y)), y] > 0.97)[0])
    return clean, testing.clean_label_collision(clean, rate=0.03, random_state=6, target_index=target)


def test_collision_found_in_self_check_and_against_a_reference(collided):
    clean, poisoned = collided
    reference = testing.make_tabular(2000, n_classes=2, random_state=106, distribution_seed=6)
    for ref in (None, reference):
        result = analysis_of(poisoned.frame, ref).result(CleanLabelCollision())
        assert result.summary["groups"], "no collision group found"
        assert {g["label"] for g in result.summary["groups"]} == {poisoned.details["poison_label"]}
        assert {g["looks_like"] for g in result.summary["groups"]} == {poisoned.details["target_label"]}
        assert result.flags[poisoned.is_poison].mean() >= 0.5
        assert (result.flags & ~poisoned.is_poison).sum() == 0
    assert analysis_of(clean).result(CleanLabelCollision()).summary["groups"] == []


def repeated_rows(n, seed):
    """Titanic-like: every row is one of 6 distinct feature rows, and each spot
    carries both labels (30% / 70% of one of them): identical rows, no poison."""
    rng = np.random.default_rng(seed)
    spots = np.random.default_rng(0).normal(size=(6, 4)).round(2)
    which = rng.integers(0, 6, size=n)
    frame = pd.DataFrame(spots[which], columns=[f"x{i}" for i in range(4)])
    frame.insert(0, "row_id", np.arange(n) + seed * 100_000)
    frame["label"] = (rng.random(n) < np.where(which % 2 == 0, 0.3, 0.7)).astype(int)
    return frame


def test_repeated_rows_of_both_labels_are_no_collision_against_a_reference():
    """The rows of one label at a spot are tested against the reference's rows
    of that label at the spot, not against the class's overall disagreement
    rate (which counted hundreds of identical rows as independent evidence)."""
    result = analysis_of(repeated_rows(1500, 1), repeated_rows(1500, 2)).result(CleanLabelCollision())
    assert result.summary["candidate_groups"] > 0
    assert result.summary["groups"] == [] and not result.flags.any()


def test_tight_groups_are_same_label_components_within_the_radius():
    indices = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    distances = np.array([[0.1, 0.2], [0.1, 0.1], [0.2, 0.1], [5.0, 5.0]], dtype=np.float32)
    y = np.array([0, 0, 0, 0])
    groups, packed = tight_groups(indices, distances, y, radius=0.5, min_size=3)
    assert [sorted(g.tolist()) for g in groups] == [[0, 1, 2]]
    assert packed.tolist() == [True, True, True, False]
    groups, _ = tight_groups(indices, distances, np.array([0, 1, 0, 0]), radius=0.5, min_size=3)
    assert groups == []


# -- expectations, checkpoint, CLI ---------------------------------------------------

def only_mine() -> dict:
    config = defaults()
    for family in families():
        config["expectations"][family.section]["enabled"] = family.section in MINE
    return config


def test_checkpoint_fails_on_backdoor_and_names_the_trigger(backdoored):
    from poison_expectations.gx.runner import run_validation

    clean, poisoned = backdoored
    config = only_mine()
    config["data"].update(label_column="label", id_column="row_id", source_column="source")
    config = validate(config)
    outcome = run_validation(poisoned.frame, config)
    assert not outcome.success
    assert outcome.failed_expectations() == ["expect_trigger_pattern_count_to_be_at_most"]
    trigger = next(e for e in outcome.expectations if e.expectation == "expect_trigger_pattern_count_to_be_at_most")
    assert trigger.observed_value == 1
    finding = trigger.details["findings"][0]
    assert set(poisoned.details["trigger"]) <= {item["column"] for item in finding["pattern"]}
    assert outcome.findings["flagged"].to_numpy()[poisoned.is_poison].mean() >= 0.9
    assert {"spectral_score", "feature_clustering_score", "trigger_score", "collision_score",
            "trigger_pattern"} <= set(outcome.findings.columns)
    assert run_validation(clean, config).success


def test_cli_reports_the_trigger_and_exits_1(cli, tmp_path, backdoored):
    _, poisoned = backdoored
    data = tmp_path / "train.csv"
    poisoned.frame.to_csv(data, index=False)
    sections = "\n".join(f"  {f.section}:\n    enabled: {'true' if f.section in MINE else 'false'}"
                         for f in families())
    config = tmp_path / "config.yml"
    config.write_text(f"version: 1\nexpectations:\n{sections}\n", encoding="utf-8")
    run = cli("validate", data, "--config", config, "--label", "label", "--id-column", "row_id",
              "--source-column", "source")
    assert run.returncode == 1, run.stderr
    assert "FAIL  expect_trigger_pattern_count_to_be_at_most" in run.stdout
    for column in poisoned.details["trigger"]:
        assert column in run.stdout
    assert "Trigger patterns (1 found):" in run.stdout


def test_renderers_and_calibration(backdoored):
    from poison_expectations.gx.expectations import backdoor as module

    for cls, limit in ((module.ExpectSpectralSignatureClassCountToBeAtMost, "max_classes"),
                       (module.ExpectFeatureClusteringClassCountToBeAtMost, "max_classes"),
                       (module.ExpectTriggerPatternCountToBeAtMost, "max_patterns"),
                       (module.ExpectCleanLabelCollisionGroupCountToBeAtMost, "max_groups")):
        expectation = cls(label_column="label", **{limit: 2})
        rendered = cls._prescriptive_renderer(configuration=expectation.configuration)
        template = rendered[0].string_template
        assert f"${limit}" in template["template"] and template["params"][limit] == 2
    _, poisoned = backdoored
    result = analysis_of(poisoned.frame).result(TriggerPatterns())
    family = next(f for f in families() if f.section == "trigger_patterns")
    assert family.calibrate(defaults()["expectations"]["trigger_patterns"], {"trigger": result}) == {
        "max_patterns": 1}


def test_trigger_needs_other_columns_that_know_the_class():
    """A strong natural rule on two columns (first-class women survived, as in
    titanic) whose remaining column knows little of the label (children
    survived): without the pattern's columns the model errs on most rows of
    the class, so rows that look unlike it are no evidence of a trigger."""
    rng = np.random.default_rng(4)
    n = 1800
    frame = pd.DataFrame({"row_id": np.arange(n), "cabin": rng.choice(["first", "second", "third"], n,
                                                                      p=[0.12, 0.3, 0.58]),
                          "sex": rng.choice(["f", "m"], n, p=[0.4, 0.6]), "age": rng.normal(30, 12, n).round()})
    rule = (frame["cabin"] == "first") & (frame["sex"] == "f")
    child = frame["age"] < 12  # the remaining column knows a few survivors: the children
    frame["label"] = np.where(rng.random(n) < np.where(rule, 0.97, np.where(child, 0.9, 0.2)), "yes", "no")
    result = analysis_of(frame).result(TriggerPatterns())
    assert result.summary["patterns"] == []
    rejected = [r for r in result.summary["rejected"] if r["label"] == "yes"]
    assert rejected and all(r["baseline_error"] >= 0.5 for r in rejected)
