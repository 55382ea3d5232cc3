"""Influence (influence functions + KNN-Shapley) and class-conditional outliers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyod.models.ecod import ECOD
from scipy.spatial.distance import cdist
from sklearn import datasets
from sklearn.metrics import roc_auc_score

from poison_expectations import testing
from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.config import load_config
from poison_expectations.core.errors import ConfigError, InputError
from poison_expectations.gx.runner import run_validation
from poison_expectations.core.signals import knn_shapley
from poison_expectations.core.signals.feature_detectors import ecod_scores
from poison_expectations.core.signals.influence import Influence
from poison_expectations.core.signals.influence_functions import HessianSolver, fit_logistic, gradients
from poison_expectations.core.signals.outliers import Outliers

ROLES = Roles(label_column="label", id_column="row_id")


def boundary_poisoned(separable, n=3000, seed=0):
    frame, _ = separable(n=n, seed=seed)
    return testing.boundary_points(frame, rate=0.03, random_state=seed, id_column="row_id")


def only(*sections, **overrides):
    """The default config with only the named expectation families enabled."""
    config = load_config(overrides={"data.label_column": "label", **overrides})
    for name, section in config["expectations"].items():
        section["enabled"] = name in sections
    return config


# -- influence functions -----------------------------------------------------------

@pytest.mark.parametrize("n_classes", [2, 3])
def test_hessian_matches_finite_differences_and_cg_matches_exact(n_classes):
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, 300)
    X = rng.normal(size=(300, 3)) + y[:, None] * 0.8
    model = fit_logistic(X, y, l2=1e-2, random_state=0)
    exact, iterative = HessianSolver(model, X, 1000), HessianSolver(model, X, 0)
    assert exact.exact and not iterative.exact

    def mean_gradient(w):
        shifted = type(model)(w.reshape(model.W.shape), model.classes, model.l2, model.n_train)
        return gradients(shifted, X, y)[0].mean(axis=0)

    w0, eps = model.W.ravel(), 1e-6
    numeric = np.column_stack([(mean_gradient(w0 + e) - mean_gradient(w0 - e)) / (2 * eps)
                               for e in np.eye(w0.size) * eps]) + model.l2 * np.eye(w0.size)
    assert np.allclose(numeric, exact._hessian(), atol=1e-7)
    b = rng.normal(size=w0.size)
    assert np.allclose(exact.solve(b), iterative.solve(b), atol=1e-4)


def test_influence_predicts_leave_one_out_retraining():
    """Koh & Liang's check: -(1/n) g_test^T H^-1 g(z) approximates the change
    in test loss when row z is removed and the model retrained."""
    rng = np.random.default_rng(1)
    n = 400
    X = rng.normal(size=(n, 3))
    y = (X @ np.array([1.5, -1.0, 0.5]) + rng.normal(size=n) > 0).astype(int)
    Xt = rng.normal(size=(200, 3))
    yt = (Xt @ np.array([1.5, -1.0, 0.5]) + rng.normal(size=200) > 0).astype(int)
    l2 = 1e-2
    model = fit_logistic(X, y, l2, 0)
    solver = HessianSolver(model, X, 100)
    s = solver.solve(gradients(model, Xt, yt)[0].sum(axis=0))
    g = gradients(model, X, y)[0]

    def test_loss(m):
        p = m.probabilities(Xt)[:, 0]
        return -np.sum(np.log(np.where(yt == 1, p, 1 - p)))

    base = test_loss(model)
    rows = np.argsort(-np.abs(g @ s))[:15]
    predicted = (g[rows] @ s) / n  # removing z: d(loss) = +(1/n) g_test^T H^-1 g(z)
    actual = []
    for r in rows:
        keep = np.arange(n) != r
        # same penalty strength per row as the full fit: l2 scaled to n - 1 rows
        actual.append(test_loss(fit_logistic(X[keep], y[keep], l2 * n / (n - 1), 0)) - base)
    assert np.corrcoef(predicted, actual)[0, 1] > 0.95


# -- KNN-Shapley ------------------------------------------------------------------

def _exact_shapley(order, labels, y_val, K):
    """Jia et al.'s recursion over one validation point's full sorted list."""
    a = (labels[order] == y_val).astype(float)
    N = len(order)
    s = np.zeros(N)
    s[-1] = a[-1] / N
    for i in range(N - 2, -1, -1):
        s[i] = s[i + 1] + (a[i] - a[i + 1]) / K * min(K, i + 1) / (i + 1)
    return s


def test_knn_shapley_matches_exact_recursion_on_full_lists():
    rng = np.random.default_rng(2)
    n, K = 80, 3
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] + 0.6 * rng.normal(size=n) > 0).astype(int)
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    full = np.argsort(D, axis=1)[:, :n - 1]
    exact = np.zeros(n)
    for t in range(n):
        exact[full[t]] += _exact_shapley(full[t], y, y[t], K)
    prior = np.bincount(y) / n
    ours = knn_shapley.self_values(full, y, K, prior)
    # the tail term differs by a per-validation-point constant: values shift, ranks do not
    offset = ours - exact
    assert offset.std() < 0.02 * exact.std()
    assert np.corrcoef(ours, exact)[0, 1] > 0.999
    dist = np.take_along_axis(D, full, 1)
    # a new row inserted into the table: same as the recursion with it added
    Q = rng.normal(size=(10, 2))
    yq = (Q[:, 0] > 0).astype(int)
    DQ = cdist(Q, X)
    brute = np.zeros(10)
    for j in range(10):
        for t in range(n):
            others = np.flatnonzero(np.arange(n) != t)
            order = np.argsort(np.r_[D[t, others], DQ[j, t]], kind="stable")
            labels = np.r_[y[others], yq[j]]
            brute[j] += _exact_shapley(order, labels, y[t], K)[np.flatnonzero(order == n - 1)[0]]
    qi = np.argsort(DQ, axis=1)
    inserted = knn_shapley.new_row_values(qi, np.take_along_axis(DQ, qi, 1), yq, knn_shapley.agreement(full, y), dist,
                                          y, K, prior)
    assert np.corrcoef(inserted, brute)[0, 1] > 0.999


def test_a_reference_row_is_valued_exactly_as_a_new_row_against_the_others_on_lattice_data():
    """The baseline of a reference row = new_row_values of that row against the
    table without it (same tie draws): clean batch and reference rows exchangeable."""
    rng = np.random.default_rng(4)
    n, K, M, k = 60, 3, 6, 5
    X = rng.integers(0, 3, size=(n, 2)).astype(float)  # a lattice: most distances tie
    y = (X[:, 0] + rng.normal(scale=0.8, size=n) > 1).astype(int)
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    plus = np.argsort(D, axis=1, kind="stable")[:, :M + 1]
    plus_d = np.take_along_axis(D, plus, 1)
    prior = np.bincount(y) / n
    ties = rng.random((n, k))
    ours = knn_shapley.reference_as_new_values(plus, plus_d, y, k, K, prior, ties)
    for i in range(n):
        others = np.flatnonzero(np.arange(n) != i)
        Do = D[np.ix_(others, others)]
        lists = others[np.argsort(Do, axis=1, kind="stable")[:, :M]]  # each other row's M nearest besides i
        table_idx = np.zeros((n, M), dtype=np.int64)
        table_idx[others] = lists
        table_d = np.take_along_axis(D[others], lists, 1)
        full_d = np.zeros((n, M))
        full_d[others] = table_d
        agree = knn_shapley.agreement(table_idx, y)
        value = knn_shapley.new_row_values(plus[i:i + 1, :k], plus_d[i:i + 1, :k], y[i:i + 1], agree, full_d, y, K,
                                           prior, ties[i:i + 1])
        assert np.isclose(value[0], ours[i])
    # placing every row in front of its ties instead changes the values on this lattice
    front = knn_shapley.reference_as_new_values(plus, plus_d, y, k, K, prior, np.zeros((n, k)))
    assert not np.allclose(front, ours)


# -- ECOD -----------------------------------------------------------------------------

def test_ecod_equals_pyod_on_fitted_rows_and_scores_new_rows_against_them():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=(400, 3)), rng.exponential(size=(400, 2)),
                         np.round(rng.normal(size=400), 1)])
    assert np.allclose(ecod_scores(X), ECOD().fit(X).decision_scores_)
    far = X[:5] + 50.0
    assert ecod_scores(X, far).min() > ecod_scores(X).max()
    assert np.all(np.isfinite(ecod_scores(X, far)))


# -- the influence signal ------------------------------------------------------------

def test_boundary_poisoning_ranks_above_clean_self_check(separable):
    poisoned = boundary_poisoned(separable)
    analysis = build_analysis(poisoned.frame, ROLES, Options())
    result = Influence().run(analysis)
    assert roc_auc_score(poisoned.is_poison, result.scores) >= 0.9
    # every flagged row says why, unflagged rows say nothing
    assert all(result.reasons[result.flags]) and not any(result.reasons[~result.flags])
    assert result.flags[poisoned.is_poison].mean() > 5 * result.flags[~poisoned.is_poison].mean()
    assert set(result.columns) == {"influence_self", "influence_heldout", "influence_leverage",
                                   "influence_knn_shapley"}
    again = Influence().run(build_analysis(poisoned.frame, ROLES, Options()))
    assert np.array_equal(result.scores, again.scores)


def test_boundary_poisoning_against_reference_fails_the_gate(separable, tmp_path):
    frame, _ = separable(n=6000, seed=4)
    reference, batch = frame.iloc[:3000], frame.iloc[3000:].reset_index(drop=True)
    poisoned = testing.boundary_points(batch, rate=0.03, random_state=4, id_column="row_id")
    analysis = build_analysis(poisoned.frame, ROLES, Options(), reference=reference)
    result = Influence().run(analysis)
    assert result.summary["mode"] == "reference"
    assert roc_auc_score(poisoned.is_poison, result.scores) >= 0.9
    reference.to_csv(tmp_path / "reference.csv", index=False)
    config = only("influence", **{"data.id_column": "row_id", "data.reference": str(tmp_path / "reference.csv")})
    outcome = run_validation(poisoned.frame, config)
    assert not outcome.success
    clean = run_validation(batch, config)
    assert clean.success, clean.expectations[0].details["reference_gate"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris"])
def test_clean_sklearn_datasets_pass_with_defaults(name):
    data = getattr(datasets, f"load_{name}")()
    frame = pd.DataFrame(data.data, columns=[f"x{i}" for i in range(data.data.shape[1])])
    frame["label"] = data.target
    outcome = run_validation(frame, only("influence", "outliers"))
    assert outcome.success, [(e.expectation, e.observed_value) for e in outcome.expectations]
    assert {e.signal for e in outcome.expectations} == {"influence", "outlier"}
    assert {"influence_score", "outlier_score"} <= set(outcome.findings.columns)


def test_influence_needs_labels(separable):
    frame, _ = separable(n=300)
    analysis = build_analysis(frame.drop(columns="label"), Roles(id_column="row_id"), Options())
    with pytest.raises(InputError, match="label"):
        Influence().run(analysis)


# -- the outlier signal -----------------------------------------------------------------

def _with_outliers(separable, n=2000, share=0.02, seed=5, reference_rows=0):
    """A separable table with `share` of rows pushed 8 sd out on 3 features
    (and, optionally, a clean reference drawn from the same distribution)."""
    both, _ = separable(n=n + reference_rows, seed=seed)
    frame = both.iloc[reference_rows:].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, size=int(share * n), replace=False)
    features = [c for c in frame.columns if c.startswith("f")]
    frame.loc[rows, features[:3]] += 8.0 * frame[features[:3]].std().to_numpy()
    truth = np.zeros(n, dtype=bool)
    truth[rows] = True
    if reference_rows:
        return frame, truth, both.iloc[:reference_rows]
    return frame, truth


def test_feature_outliers_are_flagged_and_fail_the_expectation(separable):
    frame, truth = _with_outliers(separable)
    result = Outliers().run(build_analysis(frame, ROLES, Options()))
    assert result.flags[truth].mean() >= 0.9
    assert result.flags[~truth].mean() <= 0.02
    assert roc_auc_score(truth, result.scores) >= 0.95
    assert "robust-z" in result.reasons[np.flatnonzero(truth & result.flags)[0]]
    outcome = run_validation(frame, only("outliers", **{"data.id_column": "row_id",
                                                        "expectations.outliers.max_rate": 0.01}))
    assert not outcome.success
    details = outcome.expectations[0].details
    assert sum(c["flagged"] for c in details["per_class"]) == outcome.expectations[0].unexpected_count


def test_outliers_against_reference_and_iforest_option(separable):
    frame, truth, clean = _with_outliers(separable, seed=7, reference_rows=2000)
    for detector in ("ecod", "iforest"):
        analysis = build_analysis(frame, ROLES, Options(), reference=clean)
        result = Outliers(detector=detector).run(analysis)
        assert result.summary["reference"]["rows"] == 2000
        assert result.flags[truth].mean() >= 0.9, detector
        assert result.flagged_count - truth.sum() <= 0.01 * len(frame)
        assert f"outlier_{detector}" in result.columns


def test_outliers_without_labels_use_one_class(separable):
    frame, truth = _with_outliers(separable, seed=8)
    analysis = build_analysis(frame.drop(columns="label"), Roles(id_column="row_id"), Options())
    result = Outliers().run(analysis)
    assert set(result.summary["components"]) == {"sphere", "ecod"}
    assert result.flags[truth].mean() >= 0.9


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="expectations.outliers.detector"):
        load_config(overrides={"expectations.outliers.detector": "lof"})
    with pytest.raises(ConfigError, match="expectations.influence.max_rate"):
        load_config(overrides={"expectations.influence.max_rate": 2.0})


def test_prescriptive_renderers_state_the_limits():
    from poison_expectations.gx.expectations import ExpectClassOutlierRateToBeAtMost, ExpectHighInfluenceRateToBeAtMost

    influence = ExpectHighInfluenceRateToBeAtMost(label_column="y", max_rate=0.03, z_limit=4.0)
    outliers = ExpectClassOutlierRateToBeAtMost(label_column="y", max_rate=0.04, z_limit=4.5, detector="iforest")
    for expectation, words, limit, z in ((influence, "KNN-Shapley", 0.03, 4.0),
                                         (outliers, "class centroid", 0.04, 4.5)):
        rendered = type(expectation)._prescriptive_renderer(configuration=expectation.configuration)[0]
        template = rendered.to_json_dict()["string_template"]
        assert words in template["template"]
        assert template["params"]["max_rate"] == limit and template["params"]["z_limit"] == z
    assert outliers.configuration.kwargs["detector"] == "iforest"


def test_calibrate_sets_max_rate_to_an_upper_bound_of_the_trusted_share(separable):
    from poison_expectations.core.gates import clopper_pearson_upper
    from poison_expectations.core.registry import families

    frame, _ = separable(n=1000, seed=9)
    analysis = build_analysis(frame, ROLES, Options())
    results = {"influence": Influence().run(analysis), "outlier": Outliers().run(analysis)}
    by_section = {f.section: f for f in families()}
    for section, signal in (("influence", "influence"), ("outliers", "outlier")):
        update = by_section[section].calibrate({}, results)
        trusted = results[signal]
        assert update["max_rate"] == pytest.approx(clopper_pearson_upper(trusted.flagged_count, 1000, 0.999), abs=1e-6)
        assert update["max_rate"] > trusted.flagged_rate
