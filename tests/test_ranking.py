"""poison_score's ranking p-values (core/verdicts/ranking.py) and how findings use them."""

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poison_expectations.core.findings import build_findings
from poison_expectations.core.signals.base import SignalResult
from poison_expectations.core.verdicts import benjamini_hochberg, combine_pvalues, conformal_pvalues
from poison_expectations.core.verdicts.ranking import (class_conditional_ranking, own_rank_pvalues,
                                                       ranking_pvalues, ranking_score, tail_scale)


def test_ranking_pvalues_are_monotone_in_the_score_and_strict_above_the_reference_minimum():
    rng = np.random.default_rng(0)
    reference = np.round(rng.normal(size=300), 1)  # many ties
    scores = np.sort(rng.normal(scale=2.0, size=2000))
    p = ranking_pvalues(scores, reference)
    assert np.all(np.diff(p) <= 0)
    inside = scores > reference.min()
    assert np.all(np.diff(p[inside]) < 0) or len(np.unique(scores[inside])) < inside.sum()
    distinct = np.unique(scores[inside])
    assert np.all(np.diff(ranking_pvalues(distinct, reference)) < 0)
    assert np.all((p > 0) & (p <= 1))


def test_rows_beyond_the_reference_maximum_are_ordered_by_their_scores():
    """The randomized conformal p-value puts them in random order (all U / (n + 1));
    the ranking p-value keeps the score's order, below the largest-reference value."""
    rng = np.random.default_rng(1)
    reference = rng.exponential(size=200)
    beyond = reference.max() + np.array([0.01, 0.5, 0.2, 3.0, 1.0])
    p = ranking_pvalues(beyond, reference)
    assert np.array_equal(np.argsort(p), np.argsort(-beyond))
    assert np.all(p < 1.0 / (len(reference) + 1))
    # the tail follows the fitted exponential: one scale further is a factor e
    q = ranking_pvalues(reference.max() + np.array([0.0, tail_scale(reference)]), reference)
    assert q[1] / q[0] == pytest.approx(np.exp(-1.0))
    randomized = conformal_pvalues(beyond, reference, seed=0)
    assert np.all(randomized <= 1.0 / (len(reference) + 1))


def test_inside_the_range_it_is_the_mean_of_the_randomized_pvalue():
    """At a reference score the ranking p-value is the mid-rank: the mean of the
    conformal p-value over its random tie-break."""
    reference = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0])
    at = np.array([1.0, 3.0, 0.0])
    draws = np.mean([conformal_pvalues(at, reference, seed=s, ties="independent") for s in range(4000)], axis=0)
    assert ranking_pvalues(at, reference) == pytest.approx(draws, abs=0.01)


def test_flat_reference_top_and_empty_reference():
    assert tail_scale(np.ones(20)) == 1.0
    p = ranking_pvalues([1.0, 2.0, 3.0], np.ones(20))
    assert p[0] > p[1] > p[2]
    assert np.array_equal(ranking_pvalues([0.3, 0.9], []), [1.0, 1.0])


def test_class_conditional_ranking_ranks_within_the_class():
    rng = np.random.default_rng(2)
    ref_y = np.repeat([0, 1, 2], [100, 80, 10])  # class 2 is small: pooled
    reference = rng.normal(size=190) + 3.0 * (ref_y == 1)
    y = np.array([0, 0, 1, 1, 2])
    scores = np.array([0.5, 5.0, 3.5, 9.0, 0.1])
    p = class_conditional_ranking(scores, y, reference, ref_y)
    assert p[0] == ranking_pvalues([0.5], reference[ref_y == 0])[0]
    assert p[2] == ranking_pvalues([3.5], reference[ref_y == 1])[0]
    assert p[4] == ranking_pvalues([0.1], reference[ref_y == 2])[0]


def test_own_pvalues_count_only_where_the_detector_scored_the_row():
    p = own_rank_pvalues([0.01, 0.02, 0.5, 0.3], [0.0, 0.3, 0.0, 0.1])
    assert np.allclose(p, [1.0, 0.02 * 0.5, 1.0, 0.3 * 0.5])  # the detector scored half of the rows


def test_ranking_score_is_monotone_in_each_signal():
    rng = np.random.default_rng(3)
    p = rng.random((500, 3))
    score = ranking_score(p)
    assert np.all((score >= 0) & (score < 1))
    smaller = p.copy()
    smaller[:, 1] *= 0.5
    assert np.all(ranking_score(smaller) > score)
    assert ranking_score(np.full((1, 3), 0.01))[0] == pytest.approx(0.5)
    assert ranking_score(np.ones((2, 2))).tolist() == [0.0, 0.0]


def _result(name, scores, pvalues, rank_pvalues=None):
    n = len(scores)
    return SignalResult(name, np.asarray(scores, float), np.zeros(n, bool), np.full(n, "", dtype=object),
                        summary={"fdr": {}}, pvalues=np.asarray(pvalues, float),
                        rank_pvalues=None if rank_pvalues is None else np.asarray(rank_pvalues, float))


def test_findings_rank_by_the_ranking_pvalues_and_flag_by_the_randomized_ones():
    rng = np.random.default_rng(4)
    n = 400
    p1, p2 = rng.random(n), rng.random(n)
    p1[:20] = rng.random(20) * 1e-4
    rank1 = np.linspace(1.0, 1e-6, n)  # a ranking that disagrees with p1 on purpose
    results = [_result("a", rng.random(n), p1, rank1), _result("b", rng.random(n), p2)]
    analysis = SimpleNamespace(batch=SimpleNamespace(n=n, ids=np.arange(n)), id_name="row_index",
                               options=SimpleNamespace(fdr_q=0.1))
    findings = build_findings(analysis, results)
    combined = combine_pvalues(np.column_stack([p1, p2]))
    assert np.array_equal(findings["combined_p"].to_numpy(), combined)
    assert np.array_equal(findings["flagged"].to_numpy(), benjamini_hochberg(combined, 0.1)[0])
    assert np.allclose(findings["poison_score"].to_numpy(), ranking_score(np.column_stack([rank1, p2])))


def test_poison_score_ranks_flips_at_least_as_well_as_the_label_signal():
    """Seeded generated table, 3% random flips, against a trusted reference
    drawn from the same distribution. Before the ranking p-values poison_score
    ranked flips below label consistency alone (the combination followed
    other signals' random tie-breaks); this can fail if that comes back."""
    from poison_expectations.core.config import load_config
    from poison_expectations.gx.runner import run_validation
    from poison_expectations.testing import make_tabular, random_flips

    reference = make_tabular(1200, n_classes=3, random_state=21, distribution_seed=5)
    batch = make_tabular(1200, n_classes=3, random_state=22, distribution_seed=5)
    poisoned = random_flips(batch, rate=0.03, random_state=0)
    config = load_config(None, {"data.label_column": "label", "data.id_column": "row_id"})
    findings = run_validation(poisoned.frame, config, reference=reference, after_run=False).findings
    truth = poisoned.is_poison
    ours = roc_auc_score(truth, findings["poison_score"])
    label = roc_auc_score(truth, findings["label_consistency_score"])
    assert ours >= label, (ours, label)
