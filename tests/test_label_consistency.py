import os

import numpy as np
import pandas as pd
import pytest

from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.errors import InputError
from poison_expectations.core.fitting import fit_profile
from poison_expectations.core.signals.label_consistency import (
    LabelConsistency, class_thresholds, confident_issues, fold_count)
from poison_expectations.stores.state_codec import plain_data_problems, roundtrip

ROLES = Roles(label_column="label", id_column="row_id")


def _run(frame, method="both", reference=None, k=10):
    analysis = build_analysis(frame, ROLES, Options(k=k), reference)
    return analysis.result(LabelConsistency(method=method, k=k))


@pytest.mark.parametrize("method", ["knn", "model", "both"])
def test_detects_random_flips_on_separable_data(separable, method):
    frame, flipped = separable(n=3000, flip_rate=0.05, seed=4)
    result = _run(frame, method)
    assert result.flags[flipped].mean() >= 0.9
    assert result.flags[~flipped].mean() <= 0.10
    # flipped rows score higher than clean ones
    assert result.scores[flipped].mean() > result.scores[~flipped].mean() + 0.3
    assert all(result.reasons[flipped & result.flags])
    assert not any(result.reasons[~result.flags])


def test_multiclass_string_labels_and_per_class_breakdown(separable):
    frame, flipped = separable(n=3000, flip_rate=0.05, seed=2, n_classes=3)
    frame["label"] = frame["label"].map({0: "cat", 1: "dog", 2: "emu"})
    result = _run(frame)
    assert result.flags[flipped].mean() >= 0.85
    per_class = {c["class"]: c for c in result.summary["per_class"]}
    assert set(per_class) == {"cat", "dog", "emu"}
    assert sum(c["flagged"] for c in per_class.values()) == result.flagged_count


def test_boolean_labels(separable):
    frame, flipped = separable(n=1500, flip_rate=0.05, seed=3)
    frame["label"] = frame["label"].astype(bool)
    result = _run(frame)
    assert result.flags[flipped].mean() >= 0.85


def test_reference_mode_scores_batch_against_trusted_rows(separable):
    frame, _ = separable(n=4000, seed=5)
    reference, batch = frame.iloc[:2000].reset_index(drop=True), frame.iloc[2000:].reset_index(drop=True)
    flipped = np.random.default_rng(0).random(len(batch)) < 0.05
    batch.loc[flipped, "label"] = 1 - batch.loc[flipped, "label"]
    result = _run(batch, reference=reference)
    assert result.summary["reference"]["rows"] == 2000
    assert result.summary["reference"]["flagged"] / 2000 < 0.02
    assert result.flags[flipped].mean() >= 0.9
    assert result.flags[~flipped].mean() <= 0.05


def test_clean_data_is_rarely_flagged(separable):
    frame, _ = separable(n=3000, seed=6)
    assert _run(frame).flagged_rate < 0.02


def test_single_class_is_an_input_error(separable):
    frame, _ = separable(n=200)
    frame["label"] = 1
    with pytest.raises(InputError, match="single class"):
        _run(frame)


def test_confident_learning_prunes_by_noise_rate():
    # 4 rows labelled 0; two are confidently class 1 (above class 1's mean self-confidence, 0.85)
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.12, 0.88], [0.1, 0.9], [0.2, 0.8]])
    y = np.array([0, 0, 0, 0, 1, 1])
    thresholds = class_thresholds(probs, y, 2)
    flags = confident_issues(probs, y, thresholds)
    assert flags.tolist() == [False, False, True, True, False, False]


# -- fit / score ---------------------------------------------------------------------

def _split(frame, at, flip_seed):
    reference, batch = frame.iloc[:at].reset_index(drop=True), frame.iloc[at:].reset_index(drop=True)
    flipped = np.random.default_rng(flip_seed).random(len(batch)) < 0.05
    batch.loc[flipped, "label"] = 1 - batch.loc[flipped, "label"]
    return reference, batch, flipped


def test_score_depends_only_on_the_state_and_the_batch(separable):
    frame, _ = separable(n=3000, seed=8)
    reference, first, _ = _split(frame.iloc[:2000], 1200, 1)
    _, second, flipped = _split(frame.drop(index=range(1200, 2000)), 1200, 2)
    # label codes follow first appearance in the batch: let both batches start with the same label
    order = np.argsort(second["label"].to_numpy() != first["label"].iloc[0], kind="stable")
    second, flipped = second.iloc[order].reset_index(drop=True), flipped[order]
    signal = LabelConsistency()
    one = build_analysis(first, ROLES, Options(), reference)
    two = build_analysis(second, ROLES, Options(), reference)
    assert list(one.classes) == list(two.classes)  # same label codes, so one state serves both
    state = signal.fit(one)
    reused = signal.score(state, two)
    other = LabelConsistency()
    fresh = other.score(other.fit(two), two)  # fits its own state on the same reference
    assert np.array_equal(reused.flags, fresh.flags) and np.allclose(reused.scores, fresh.scores)
    assert np.allclose(signal.score(state, one).scores, one.result(LabelConsistency()).scores)
    assert reused.flags[flipped].mean() >= 0.8  # and it still finds the flips


def test_reference_scores_are_the_fitted_rows_out_of_fold_scores(separable):
    frame, flipped = separable(n=1500, flip_rate=0.05, seed=9)
    analysis = build_analysis(frame, ROLES, Options())
    signal = LabelConsistency()
    state = signal.fit(analysis)
    scores = state["reference_scores"]
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    assert np.array_equal(scores, analysis.result(signal).scores)  # a self-check scores rows out of fold
    assert scores[flipped].mean() > scores[~flipped].mean() + 0.3
    # the fold models only score other rows: a plain self-check leaves them out, a profile keeps them
    assert "fold_models" not in state  # a plain self-check
    analysis.fits_profile = True
    assert len(signal.fit(analysis)["fold_models"]) == signal.params["n_folds"]


def test_state_is_plain_data_and_a_profile_state_holds_the_scoring_model(separable):
    frame, _ = separable(n=1200, seed=10)
    reference, batch, _ = _split(frame, 600, 3)
    analysis = build_analysis(batch, ROLES, Options(), reference)
    signal = LabelConsistency()
    expected = signal.score(signal.fit(analysis), analysis)
    for state in (signal.fit(analysis), signal.fit(build_analysis(reference, ROLES, Options()), scoring=True)):
        assert plain_data_problems(state) == []
        assert state["fold_models"] and len(state["reference_scores"]) == 600
        stored = roundtrip(state)  # as a profile writes and reads it: JSON, .npy and skops, no pickle
        assert np.array_equal(signal.score(stored, analysis).flags, expected.flags)
    self_state = signal.fit(build_analysis(reference, ROLES, Options()), scoring=False)
    with pytest.raises(InputError, match="scoring model"):
        signal.score(self_state, analysis)


def _labelled(X, labels):
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["label"] = labels
    return frame


def test_classes_too_rare_for_the_folds_stay_out_of_the_model():
    """Many 2-row classes (issue 17: 1,500 of them took 18 minutes): the model
    is trained on the learnable classes only, rare-class rows keep kNN evidence."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat([0, 1], 300), np.repeat(np.arange(2, 302), 2)])
    X = rng.normal(size=(len(labels), 5)) + 3.0 * (labels == 1)[:, None]
    analysis = build_analysis(_labelled(X, labels), ROLES, Options())
    signal = LabelConsistency(method="both")
    state = signal.fit(analysis, scoring=True)
    for model in state["fold_models"]:
        assert sorted(analysis.classes[model.classes_]) == [0, 1]
    result = signal.score_fitted(state, analysis)
    rare = result.summary["unlearnable_classes"]
    assert rare["count"] == 300 and rare["rows"] == 600 and rare["treatment"] == "kNN evidence only"
    model_only = LabelConsistency(method="model")
    only = model_only.score_fitted(model_only.fit(analysis), analysis)
    assert not only.flags[600:].any() and not only.scores[600:].any()  # unscored, not flagged
    assert only.flags[:600].mean() < 0.1


def test_only_rare_classes_fit_no_model():
    labels = np.repeat(np.arange(1500), 2)
    X = np.random.default_rng(1).normal(size=(3000, 4))
    analysis = build_analysis(_labelled(X, labels), ROLES, Options())
    state = LabelConsistency().fit(analysis, scoring=True)
    assert not state["has_model"] and not state.get("fold_models") and state["projection"] is None
    assert np.isfinite(state["reference_scores"]).all()


def test_wide_tables_reach_the_model_projected():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    X = rng.normal(size=(400, 1000))
    X[:, 0] += 4.0 * labels
    analysis = build_analysis(_labelled(X, labels), ROLES, Options())
    signal = LabelConsistency(method="model", model="logistic")  # the projection serves either model; this one is fast
    state = signal.fit(analysis, scoring=True)
    assert {model.n_features_in_ for model in state["fold_models"]} == {256}
    assert signal.score_fitted(state, analysis).summary["model_features"] == {"encoded": 1000, "projected_to": 256}


def test_folds_stop_where_every_fold_model_already_trains_on_the_cap():
    for n in (6, 1_000, 100_000, 120_000, 130_000, 200_000, 1_000_000, 10_000_000):
        k = fold_count(5, n, 100_000)
        train = n - -(-n // k)  # rows outside the largest test fold
        assert 2 <= k <= min(5, n)
        assert k == min(5, n) or train >= 100_000  # fewer folds only where the cap binds anyway
    assert fold_count(5, 1_000_000, 100_000) == 2 and fold_count(5, 100_000, 100_000) == 5


def test_a_profile_scores_like_a_reference_run(separable):
    """fit_profile runs a self-check on the trusted table; its state must still
    hold the model that scores batches, and score them as a reference run does."""
    frame, _ = separable(n=2400, seed=12)
    reference, batch, flipped = _split(frame, 1200, 4)
    order = np.argsort(batch["label"].to_numpy() != reference["label"].iloc[0], kind="stable")
    batch, flipped = batch.iloc[order].reset_index(drop=True), flipped[order]  # same label codes both ways
    profile = fit_profile(reference, ROLES, Options(), [LabelConsistency()], meta={"plugin_version": "test"})
    with_profile = build_analysis(batch, ROLES, Options(), profile=profile).result(LabelConsistency())
    with_reference = build_analysis(batch, ROLES, Options(), reference).result(LabelConsistency())
    assert np.array_equal(with_profile.flags, with_reference.flags)
    assert np.allclose(with_profile.scores, with_reference.scores)
    assert with_profile.flags[flipped].mean() >= 0.8


def test_models_run_single_threaded_on_a_busy_machine(monkeypatch):
    from poison_expectations.core.signals import label_consistency as lc
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(lc.os, "getloadavg", lambda: (float(cores), 0.0, 0.0))
    assert lc._threads(1_000_000) == 1
    monkeypatch.setattr(lc.os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert lc._threads(1_000_000) is None and lc._threads(1_000) == 1
