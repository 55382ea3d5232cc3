"""Influence and outliers as fit/score: a state fitted once scores many batches,
is plain data, and holds one out-of-sample reference score per fitted row."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from poison_expectations.core.analysis import Analysis, Options, Roles, build_analysis
from poison_expectations.core.signals import influence, influence_crossfit, knn_shapley, outliers
from poison_expectations.core.signals.influence import Influence
from poison_expectations.core.signals.outliers import Outliers
from poison_expectations import testing
from poison_expectations.stores.state_codec import plain_data_problems

ROLES = Roles(label_column="label", id_column="row_id")
SIGNALS = {"influence": lambda: Influence(), "outliers ecod": lambda: Outliers(),
           "outliers iforest": lambda: Outliers(detector="iforest")}


def _sorted(frame):
    """Label 0 first, so every analysis built with the reference codes the labels alike."""
    return frame.sort_values("label", kind="stable").reset_index(drop=True)


def _reference_and_batches(separable):
    frame, _ = separable(n=4500, seed=11)
    reference = _sorted(frame.iloc[:1500])
    clean = _sorted(frame.iloc[1500:3000])
    poisoned = testing.boundary_points(frame.iloc[3000:].reset_index(drop=True), rate=0.05, random_state=11,
                                       id_column="row_id").frame
    return reference, [clean, _sorted(poisoned)]


def _forbid_fitting(monkeypatch):
    """Every model fit, detector fit, baseline or reference graph raises."""
    from pyod.models.iforest import IForest
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LogisticRegression

    def boom(*args, **kwargs):
        raise AssertionError("score refitted something")

    for owner, name in [(LogisticRegression, "fit"), (IsolationForest, "fit"), (IForest, "fit"),
                        (influence_crossfit.HessianSolver, "__init__"), (influence_crossfit, "fit_logistic"),
                        (knn_shapley, "self_values"), (influence, "fit_baseline"), (outliers, "fit_baseline"),
                        (outliers, "centroids"), (outliers, "ecod_fit"), (outliers, "iforest_fit"),
                        (Analysis, "reference_neighbors"), (Analysis, "fitted_neighbors")]:
        monkeypatch.setattr(owner, name, boom)


@pytest.mark.parametrize("which", list(SIGNALS))
def test_a_state_fitted_once_scores_two_batches_without_refitting(separable, monkeypatch, which):
    reference, batches = _reference_and_batches(separable)
    analyses = [build_analysis(b, ROLES, Options(), reference=reference) for b in batches]
    assert list(analyses[0].classes) == list(analyses[1].classes)
    expected = [SIGNALS[which]().run(a) for a in analyses]  # fit and score, per batch
    signal = SIGNALS[which]()
    state = signal.fit(analyses[0])
    with monkeypatch.context() as patch:
        _forbid_fitting(patch)
        got = [signal.score(state, a) for a in analyses]
    for want, have in zip(expected, got, strict=True):
        assert np.array_equal(want.scores, have.scores) and np.array_equal(want.flags, have.flags)
        assert list(want.reasons) == list(have.reasons) and want.summary == have.summary
    assert got[0].n_rows == len(batches[0]) and got[1].n_rows == len(batches[1])
    assert not np.array_equal(got[0].flags, got[1].flags)  # two batches, two answers
    # the forbidding bites: fitting again raises
    with monkeypatch.context() as patch:
        _forbid_fitting(patch)
        with pytest.raises(AssertionError, match="refitted"):
            signal.fit(analyses[1])


@pytest.mark.parametrize("which", list(SIGNALS) + ["outliers unlabelled"])
@pytest.mark.parametrize("with_reference", [False, True])
def test_b_reference_scores_one_finite_entry_per_fitted_row(separable, which, with_reference):
    frame, _ = separable(n=1200, seed=12)
    roles, make = ROLES, SIGNALS.get(which)
    if which == "outliers unlabelled":
        frame, roles, make = frame.drop(columns="label"), Roles(id_column="row_id"), Outliers
    reference = frame.iloc[:700] if with_reference else None
    analysis = build_analysis(frame.iloc[700:], roles, Options(), reference=reference)
    scores = make().fit(analysis)["reference_scores"]
    assert scores.shape == (analysis.fitted.n,) and scores.dtype.kind == "f"
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    assert np.unique(scores).size > 10  # ranks, not a constant


@pytest.mark.parametrize("which", list(SIGNALS))
@pytest.mark.parametrize("with_reference", [False, True])
def test_c_state_is_plain_data(separable, which, with_reference):
    frame, _ = separable(n=900, seed=13, n_classes=3)
    reference = frame.iloc[:500] if with_reference else None
    state = SIGNALS[which]().fit(build_analysis(frame.iloc[500:], ROLES, Options(), reference=reference))
    assert plain_data_problems(state) == []


@pytest.mark.parametrize("which", list(SIGNALS))
def test_reference_scores_are_exchangeable_with_a_clean_batch(separable, which):
    """Conformal p-values of clean batch rows over reference_scores are about
    uniform: the share under 0.1 stays near 0.1 (the next issue's use)."""
    frame, _ = separable(n=5000, seed=14)
    analysis = build_analysis(frame.iloc[2500:], ROLES, Options(), reference=frame.iloc[:2500])
    signal = SIGNALS[which]()
    state = signal.fit(analysis)
    batch = signal.score(state, analysis).scores
    reference = np.sort(state["reference_scores"])
    above = reference.size - np.searchsorted(reference, batch, side="left")
    p = (1 + above) / (reference.size + 1)
    assert 0.06 <= np.mean(p <= 0.1) <= 0.14


def test_stored_isolation_forest_scores_as_pyods_iforest():
    """IForest's state is the scikit-learn forest, fitted with pyod's settings:
    its scores equal pyod's in and out of sample."""
    from pyod.models.iforest import IForest

    from poison_expectations.core.signals.feature_detectors import iforest_apply, iforest_fit

    rng = np.random.default_rng(15)
    X, new = rng.normal(size=(600, 4)).astype(np.float32), rng.normal(size=(50, 4)).astype(np.float32) * 3
    pyod = IForest(n_estimators=100, max_samples=256, random_state=3).fit(X)
    forest = iforest_fit(X, 3)
    assert isinstance(forest, BaseEstimator)
    assert np.array_equal(iforest_apply(forest, X), pyod.decision_scores_)
    assert np.array_equal(iforest_apply(forest, new), pyod.decision_function(new))
