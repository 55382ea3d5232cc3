"""Fit once, score many: the backdoor family and the sources signal as
fit/score estimators with a plain-data state."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.signals.collision import CleanLabelCollision
from poison_expectations.core.signals.feature_clustering import FeatureClustering
from poison_expectations.core.signals.sources import SourceStatistics
from poison_expectations.core.signals.spectral import SpectralSignatures
from poison_expectations.core.signals.triggers import TriggerPatterns
from poison_expectations import testing as attacks
from poison_expectations.stores.state_codec import plain_data_problems

PER_ROW = (SpectralSignatures, FeatureClustering, CleanLabelCollision)


def analysis_of(frame, reference=None, embedding=False):
    roles = Roles(label_column="label", id_column="row_id",
                  source_column="source" if "source" in frame.columns else None,
                  embedding_columns=("emb",) if embedding else ())
    return build_analysis(frame, roles, Options(), reference=reference)


@pytest.fixture(scope="module")
def embedded():
    """An embedding backdoor, a clean batch and a clean reference (3 draws)."""
    poisoned, truth = attacks.make_embedding_backdoor()
    clean, _ = attacks.make_embedding_backdoor(poison=False, sample_seed=10)
    reference, _ = attacks.make_embedding_backdoor(poison=False, sample_seed=9)
    return poisoned, truth, clean, reference


@pytest.fixture(scope="module")
def tabular():
    """A trigger backdoor, a clean-label collision and a clean reference."""
    reference = attacks.make_tabular(2000, n_classes=2, random_state=103, distribution_seed=3)
    clean = attacks.make_tabular(2000, n_classes=2, random_state=3)
    backdoored = attacks.backdoor(clean, rate=0.05, random_state=3).frame
    collided = attacks.clean_label_collision(clean, rate=0.03, random_state=6, target_index=5).frame
    return reference, backdoored, collided


def _fit_once_score_twice(signal, first, second, fresh_second):
    """Fit on `first`'s reference, score both batches with that state only,
    and compare the second with a run that fits anew."""
    state = signal.fit(first)
    signal.fit = lambda analysis: pytest.fail("score refitted")  # noqa: B023
    one, two = signal.score(state, first), signal.score(state, second)
    again = type(signal)().run(fresh_second)
    assert np.array_equal(two.flags, again.flags) and np.allclose(two.scores, again.scores)
    return state, one, two


@pytest.mark.parametrize("cls", [SpectralSignatures, FeatureClustering])
def test_representation_signals_fit_once_score_two_batches(cls, embedded):
    poisoned, truth, clean, reference = embedded
    first = analysis_of(poisoned, reference, embedding=True)
    state, one, two = _fit_once_score_twice(cls(), first, analysis_of(clean, reference, embedding=True),
                                            analysis_of(clean, reference, embedding=True))
    assert one.summary["suspicious_classes"] == [0] and one.flags[truth].mean() >= 0.9
    assert two.flagged_count == 0
    assert plain_data_problems(state) == []


def test_trigger_and_collision_fit_once_score_two_batches(tabular):
    reference, backdoored, collided = tabular
    for cls, found in ((TriggerPatterns, "patterns"), (CleanLabelCollision, "groups")):
        first = analysis_of(backdoored, reference)
        state, one, two = _fit_once_score_twice(cls(), first, analysis_of(collided, reference),
                                                analysis_of(collided, reference))
        assert plain_data_problems(state) == []
        assert (len(one.summary[found]) > 0) == (cls is TriggerPatterns)
        assert (len(two.summary[found]) > 0) == (cls is CleanLabelCollision)


@pytest.mark.parametrize("with_reference", [False, True])
def test_reference_scores_one_finite_entry_per_fitted_row(with_reference, embedded):
    poisoned, truth, _, reference = embedded
    analysis = analysis_of(poisoned, reference if with_reference else None, embedding=True)
    for cls in PER_ROW:
        scores = cls().fit(analysis)["reference_scores"]
        assert scores.shape == (analysis.fitted.n,) and np.isfinite(scores).all(), cls.name
        if not with_reference and cls is not CleanLabelCollision:
            # out of fold, a poison row still scores above the clean rows of the batch
            assert roc_auc_score(truth, scores) > 0.9, cls.name


@pytest.mark.parametrize("cls", [SpectralSignatures, FeatureClustering])
def test_clean_batch_rows_score_like_the_reference_rows(cls, embedded):
    """row_scores (batch rows against the state) and reference_scores (each
    fitted row out of fold) are one scale: on a clean batch their medians agree."""
    _, _, clean, reference = embedded
    analysis = analysis_of(clean, reference, embedding=True)
    signal = cls()
    state = signal.fit(analysis)
    rows, fitted = signal.batch_scores(state, analysis), state["reference_scores"]
    spread = np.subtract(*np.quantile(fitted, [0.75, 0.25]))
    assert abs(np.median(rows) - np.median(fitted)) < 0.25 * spread


def test_sources_state_is_plain_and_scores_from_the_run_results(tabular):
    reference, backdoored, _ = tabular
    analysis = analysis_of(backdoored, reference)
    signal = SourceStatistics(signals=["trigger"])
    assert signal.inputs == ("*",) and signal.required_inputs(analysis) == ["trigger"]
    state = signal.fit(analysis)
    assert plain_data_problems(state) == [] and "reference_scores" not in state
    with pytest.raises(Exception, match="unknown signal 'trigger'"):
        signal.score(state, analysis)  # sources never computes its inputs itself
    analysis.result(TriggerPatterns())
    summary = signal.score(state, analysis).summary
    assert summary["signals"] == ["trigger"]
    assert all(s["label_js_reference"] is not None for s in summary["sources"])


def test_a_state_fitted_as_a_reference_refuses_the_self_check(embedded):
    poisoned, _, _, reference = embedded
    analysis = analysis_of(poisoned, reference, embedding=True)
    for cls in PER_ROW:
        with pytest.raises(Exception, match="fitted as a reference"):
            cls().score_fitted(cls().fit(analysis), analysis)


def test_sources_runs_once_per_validation(monkeypatch, tmp_path):
    """Three source expectations and the GX metric share one result (it ran
    four times when its cache key changed on every request)."""
    from poison_expectations.core.config import load_config
    from poison_expectations.gx.runner import run_validation

    calls = []
    score_fitted = SourceStatistics.score_fitted
    monkeypatch.setattr(SourceStatistics, "score_fitted", lambda self, *a: calls.append(1) or score_fitted(self, *a))
    frame = attacks.make_tabular(600, n_sources=6, random_state=2)
    config = load_config(None, {"data.label_column": "label", "data.id_column": "row_id",
                                "data.source_column": "source", "expectations.label_consistency.method": "knn",
                                "expectations.sources.ledger": str(tmp_path / "ledger.db")})
    outcome = run_validation(frame, config)
    assert len(calls) == 1
    assert {e.expectation for e in outcome.expectations if e.expectation.startswith("expect_source")} == {
        "expect_source_flagged_rates_to_not_exceed_rest", "expect_source_reputations_to_be_at_least",
        "expect_sources_to_be_allowed"}


def test_the_runner_computes_the_inputs_sources_names(tmp_path):
    """sources may name a signal the config does not run: the runner computes
    it with its defaults first, as the GX metric does (one mechanism)."""
    from poison_expectations.core.config import load_config
    from poison_expectations.gx.runner import run_validation

    frame = attacks.make_tabular(600, n_sources=6, random_state=2)
    off = {f"expectations.{family}.enabled": False for family in
           ("label_consistency", "near_duplicates", "influence", "outliers", "spectral_signatures",
            "feature_clustering", "trigger_patterns", "clean_label_collision")}
    config = load_config(None, {"data.label_column": "label", "data.id_column": "row_id",
                                "data.source_column": "source", "expectations.sources.signals": ["label_consistency"],
                                "expectations.sources.ledger": str(tmp_path / "ledger.db"), **off})
    outcome = run_validation(frame, config)
    assert set(outcome.analysis.results()[i].signal for i in range(2)) == {"label_consistency", "sources"}
    assert "label_consistency" in outcome.results["sources"].summary["signals"]


def test_a_state_fitted_on_the_trusted_table_alone_scores_like_a_reference_run(embedded, tabular):
    """What a profile stores (fit in a self-check of the trusted table) scores
    a batch exactly as fitting on that table as the reference does."""
    poisoned, _, _, emb_reference = embedded
    reference, backdoored, collided = tabular
    cases = [(SpectralSignatures, poisoned, emb_reference, True), (FeatureClustering, poisoned, emb_reference, True),
             (TriggerPatterns, backdoored, reference, False), (CleanLabelCollision, collided, reference, False)]
    for cls, batch, trusted, embedding in cases:
        state = cls().fit(analysis_of(trusted, embedding=embedding))
        stored = cls().score(state, analysis_of(batch, trusted, embedding=embedding))
        direct = cls().run(analysis_of(batch, trusted, embedding=embedding))
        assert np.array_equal(stored.flags, direct.flags) and np.allclose(stored.scores, direct.scores), cls.name
        assert stored.flagged_count > 0, cls.name


@pytest.mark.parametrize("distinct", [3, 10_000])  # few distinct values (one search) and many (sorted keys)
def test_rank_gauss_equals_two_searches_of_the_sorted_fitted_column(distinct):
    """The one-lookup transform gives exactly Phi^-1 of the mid-rank that
    searching the sorted fitted column left and right gives, ties, values
    outside the fitted range and NaN included."""
    from scipy import special

    from poison_expectations.core.signals.representation import rank_gauss_apply, rank_gauss_fit

    rng = np.random.default_rng(3)
    fit = rng.integers(0, distinct, size=(5_000, 2)).astype(np.float32)
    fit[:5, 1] = np.nan
    X = rng.integers(-2, distinct + 2, size=(20_000, 2)).astype(np.float32)
    X[:, 0] += rng.choice([0.0, 0.5], size=len(X)).astype(np.float32)  # values between fitted ones
    X[:7, 1] = np.nan
    ordered = rank_gauss_fit(fit)
    expected = np.empty(X.shape, dtype=np.float32)
    for j in range(2):
        lo = np.searchsorted(ordered[j], X[:, j], side="left")
        hi = np.searchsorted(ordered[j], X[:, j], side="right")
        expected[:, j] = special.ndtri(((lo + hi) / 2.0 + 0.5) / (ordered.shape[1] + 1.0))
    assert np.array_equal(rank_gauss_apply(ordered, X), expected)


def test_two_cluster_silhouette_matches_sklearn():
    from sklearn.metrics import silhouette_score

    from poison_expectations.core.signals.feature_clustering import _silhouette

    rng = np.random.default_rng(5)
    Z = rng.standard_normal((3_000, 4))
    Z[:200] += 2.5
    assign = (Z[:, 0] > 1.2).astype(np.int64)
    assign[0] = 1 - assign[0]
    assert _silhouette(Z, assign) == pytest.approx(silhouette_score(Z, assign), abs=1e-12)
    lonely = np.zeros(len(Z), dtype=np.int64)
    lonely[0] = 1  # a cluster of one row: silhouette 0 by convention
    assert _silhouette(Z, lonely) == 0.0
