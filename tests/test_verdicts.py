"""Statistics of core/verdicts: exactness against brute force, and error rates
on simulated nulls and contaminated batches (Monte Carlo; sizes and counts in
each test, limits = nominal + 3 standard errors unless stated)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from poison_expectations.core.verdicts.counting import rank_grid
from poison_expectations.core.verdicts import (
    benjamini_hochberg,
    class_conditional_pvalues,
    combine_pvalues,
    conformal_pvalues,
    conformal_true_discoveries,
    exchangeability_gate,
    hc_test,
    higher_criticism,
    hommel_h,
    grouped_true_discoveries,
    null_distribution,
    poison_score,
    true_discoveries,
)

SIZES = list(itertools.product((50, 500, 5000), (100, 2000)))


def draw(rng, size, kind):
    """Scores of one null population: continuous, or discrete with many ties."""
    if kind == "continuous":
        return rng.normal(size=size)
    return rng.binomial(6, 0.3, size=size).astype(float)  # 7 values, heavy ties


# ---------------------------------------------------------------- conformal


@pytest.mark.parametrize("ties", ["shared", "independent"])
@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_pvalues_uniform_on_nulls(kind, ties):
    # one p-value per independent replicate (rows of one batch share the reference, so they are dependent)
    rng = np.random.default_rng([1, kind == "discrete", ties == "shared"])
    for n_ref, n_batch in SIZES:
        first = [conformal_pvalues(draw(rng, n_batch, kind), draw(rng, n_ref, kind), seed=rng, ties=ties)[0]
                 for _ in range(200)]
        assert stats.kstest(first, "uniform").pvalue > 1e-3, (n_ref, n_batch)
    # all rows of one big batch against one big reference: close to uniform too
    p = conformal_pvalues(draw(rng, 20000, kind), draw(rng, 20000, kind), seed=3, ties=ties)
    assert stats.kstest(p, "uniform").statistic < 0.03


def test_independent_mode_is_the_literal_formula():
    rng = np.random.default_rng(5)
    r = rng.integers(0, 4, size=37).astype(float)
    s = rng.integers(-1, 6, size=23).astype(float)
    u = np.random.default_rng(11).random(len(s))
    expected = [((r > x).sum() + uj * ((r == x).sum() + 1)) / (len(r) + 1) for x, uj in zip(s, u, strict=True)]
    np.testing.assert_allclose(conformal_pvalues(s, r, seed=11, ties="independent"), expected)


def test_shared_mode_without_ties_is_the_formula_and_ties_stay_in_their_interval():
    rng = np.random.default_rng(6)
    r, s = rng.normal(size=41), rng.normal(size=17)
    u = np.random.default_rng(12).random(len(s))
    expected = [((r > x).sum() + uj) / (len(r) + 1) for x, uj in zip(s, u, strict=True)]
    np.testing.assert_allclose(conformal_pvalues(s, r, seed=12), expected)
    r, s = rng.integers(0, 3, size=200).astype(float), rng.integers(0, 3, size=300).astype(float)
    k = np.floor(conformal_pvalues(s, r, seed=1) * (len(r) + 1))
    above = np.array([(r > x).sum() for x in s])
    equal = np.array([(r == x).sum() for x in s])
    assert ((k >= above) & (k <= above + equal)).all()


def test_pvalues_reject_nan_and_bad_mode():
    with pytest.raises(ValueError):
        conformal_pvalues([0.1, np.nan], [0.2, 0.3])
    with pytest.raises(ValueError):
        conformal_pvalues([0.1], [0.2], ties="other")


def test_class_conditional_ranks_within_class_and_pools_small_classes():
    rng = np.random.default_rng(7)
    # classes -1 and 1 (large) live at different score levels; class 7 has 10 reference rows only
    yr = np.r_[np.full(400, -1), np.full(400, 1), np.full(10, 7)]
    r = np.r_[rng.normal(0, 1, 400), rng.normal(10, 1, 400), rng.normal(5, 1, 10)]
    yb = np.r_[np.full(300, -1), np.full(300, 1), np.full(20, 7), np.full(5, 99)]
    s = np.r_[rng.normal(0, 1, 300), rng.normal(10, 1, 300), rng.normal(5, 1, 20), rng.normal(5, 1, 5)]
    out = class_conditional_pvalues(s, yb, r, yr, min_class_rows=50, seed=0)
    # class 1 rows score 10: marginally they would all be extreme, within their class they are uniform
    assert stats.kstest(out.pvalues[300:600], "uniform").pvalue > 1e-3
    assert conformal_pvalues(s[300:600], r, seed=0).max() < 0.6
    assert out.pooled.tolist() == [False] * 600 + [True] * 25  # class 7 and the unseen class 99
    assert sorted(out.groups) == sorted([(400, 300), (400, 300), (10, 25)])
    assert [out.groups[g] for g in out.group[[0, 299, 300, 599, 600, 624]]] == [(400, 300)] * 4 + [(10, 25)] * 2
    assert len(set(out.group[:300])) == 1 and out.group[0] != out.group[300]


# ------------------------------------------------------------- combination


def test_cauchy_combination_values_and_stability():
    np.testing.assert_allclose(combine_pvalues(np.array([[0.5, 0.5]])), [0.5])
    p = np.array([1e-300, 1e-12, 0.03, 0.5, 0.97, 1 - 1e-12, 1.0, 0.0])
    np.testing.assert_allclose(combine_pvalues(p), np.clip(p, 1e-300, 1), rtol=1e-6)  # one signal: identity
    same = np.repeat(p[:, None], 4, axis=1)  # identical p-values: Cauchy is exact (returns p)
    np.testing.assert_allclose(combine_pvalues(same), np.clip(p, 1e-300, 1), rtol=1e-6)
    mixed = combine_pvalues(np.array([[1e-300, 1.0], [1e-20, 1 - 1e-17], [0.0, 1.0]]))
    assert np.isfinite(mixed).all() and (mixed > 0).all() and (mixed < 1e-19).all()
    np.testing.assert_allclose(combine_pvalues(np.array([[0.01, 0.2, 0.9]]), "bonferroni"), [0.03])


def test_cauchy_is_calibrated_for_independent_pvalues():
    p = np.random.default_rng(8).random((50000, 5))
    for level in (0.05, 0.01):
        rate = (combine_pvalues(p) <= level).mean()
        assert abs(rate - level) < 3 * np.sqrt(level * (1 - level) / 50000) + 0.1 * level


def test_poison_score_is_monotone_in_unit_interval():
    p = np.array([1.0, 0.5, 0.1, 0.01, 1e-5, 1e-50, 1e-200, 0.0])
    score = poison_score(p)
    assert (np.diff(score) > 0).all() and score[0] == 0 and score[-1] <= 1
    assert poison_score(np.array([0.01]))[0] == pytest.approx(0.5)


# ---------------------------------------------------------------------- BH


def test_bh_matches_step_up_definition():
    rng = np.random.default_rng(9)
    for _ in range(50):
        p = np.r_[rng.random(60), rng.random(10) * 1e-3]
        flags, _ = benjamini_hochberg(p, 0.1)
        ranked = np.sort(p)
        ok = np.flatnonzero(ranked <= np.arange(1, len(p) + 1) * 0.1 / len(p))
        k = ok.max() + 1 if len(ok) else 0
        assert flags.sum() == k and (p[flags] <= (ranked[k - 1] if k else -1)).all()


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_bh_fdr_on_conformal_pvalues(kind):
    # 300 simulations: reference 500 rows, batch 1000 rows of which 5% shifted (discrete: +3 on a 0..6 scale)
    rng = np.random.default_rng([10, kind == "discrete"])
    q, fdp, null_any = 0.1, [], []
    for _ in range(300):
        r = draw(rng, 500, kind)
        s = draw(rng, 1000, kind)
        bad = np.arange(1000) < 50
        s[bad] += 3.0
        flags, _ = benjamini_hochberg(conformal_pvalues(s, r, seed=rng), q)
        fdp.append((flags & ~bad).sum() / max(flags.sum(), 1))
        null_flags, _ = benjamini_hochberg(conformal_pvalues(draw(rng, 1000, kind), r, seed=rng), q)
        null_any.append(null_flags.any())
    bound = q * 0.95
    assert np.mean(fdp) <= bound + 3 * np.std(fdp) / np.sqrt(300)
    assert np.mean(null_any) <= q + 3 * np.sqrt(q * (1 - q) / 300)  # full null: FDR = P(any flag)


# ------------------------------------------------------ closed testing bound


def brute_force_bound(p: np.ndarray, alpha: float) -> tuple[int, int]:
    """(h, d) by enumerating every intersection hypothesis with a Simes test."""
    m = len(p)

    def simes_rejects(subset):
        q = np.sort(p[list(subset)])
        return bool((q <= np.arange(1, len(q) + 1) * alpha / len(q)).any())

    subsets = [s for k in range(1, m + 1) for s in itertools.combinations(range(m), k)]
    local = {s: simes_rejects(s) for s in subsets}
    closed = {s: all(local[t] for t in subsets if set(s) <= set(t)) for s in subsets}
    largest_kept = max([len(s) for s in subsets if not closed[s]], default=0)
    order = np.argsort(p)
    h = max([i for i in range(m + 1) if i == 0 or not local[tuple(sorted(order[m - i:]))]])
    return h, m - largest_kept


def test_hommel_bound_equals_brute_force_closed_testing():
    rng = np.random.default_rng(12)
    for case in range(150):
        m = int(rng.integers(1, 9))
        p = np.where(rng.random(m) < 0.5, rng.random(m) * 0.02, rng.random(m))
        alpha = (0.05, 0.2)[case % 2]
        h, d = brute_force_bound(p, alpha)
        assert hommel_h(p, alpha) == h, (p, alpha)
        assert true_discoveries(p, alpha) == d, (p, alpha)


def brute_force_conformal_bound(p: np.ndarray, n_ref: int, alpha: float) -> int:
    """Closed testing over every subset with the conformal count local test."""
    m, grid = len(p), rank_grid(n_ref)

    def local_rejects(subset):
        q = p[list(subset)]
        tails = [stats.hypergeom.cdf(k - 1, n_ref + len(q), n_ref, k + (q < k / (n_ref + 1)).sum() - 1)
                 if (q < k / (n_ref + 1)).any() else 1.0 for k in grid]
        return min(tails) <= alpha / len(grid)

    subsets = [s for k in range(1, m + 1) for s in itertools.combinations(range(m), k)]
    local = {s: local_rejects(s) for s in subsets}
    kept = [len(s) for s in subsets if not all(local[t] for t in subsets if set(s) <= set(t))]
    return m - max(kept, default=0)


def test_conformal_count_bound_equals_brute_force_closed_testing():
    rng = np.random.default_rng(18)
    for case in range(200):
        m, n_ref = int(rng.integers(1, 8)), int(rng.choice([9, 40]))
        k = rng.integers(0, n_ref + 1, size=m) * (rng.random(m) < 0.5)  # half the rows near the top ranks
        p = np.where(k > 0, (rng.integers(0, 3, size=m) + rng.random(m)) / (n_ref + 1), rng.random(m))
        alpha = (0.1, 0.5)[case % 2]
        assert conformal_true_discoveries(p, n_ref, alpha) == brute_force_conformal_bound(p, n_ref, alpha), (p, n_ref)


# -------------------------------------------------- higher criticism + gate


def brute_force_hc(groups, n_sims, rng):
    out = []
    for _ in range(n_sims):
        p = np.concatenate([conformal_pvalues(rng.random(b), rng.random(r), seed=rng) for r, b in groups])
        out.append(higher_criticism(p, groups))
    return np.array(out)


@pytest.mark.parametrize("groups", [((50, 100),), ((500, 200),), ((300, 150), (40, 60)), ((0, 30), (200, 100))])
def test_hc_null_simulation_matches_brute_force(groups):
    fast = null_distribution(groups, 2000, 0.1, 0)
    slow = brute_force_hc(groups, 1000, np.random.default_rng(13))
    assert stats.ks_2samp(fast, slow).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_gate_false_alarm_rate_on_nulls(kind):
    # 150 null batches per size (12 sizes x 2 kinds x 150 = 3,600 in all), alpha 0.05, 500-draw Monte Carlo null
    rng = np.random.default_rng([14, kind == "discrete"])
    alpha, runs = 0.05, 150
    hc_alarms, gate_alarms, bound_positive = 0, 0, 0
    for n_ref, n_batch in SIZES:
        alarms = 0
        for _ in range(runs):
            p = conformal_pvalues(draw(rng, n_batch, kind), draw(rng, n_ref, kind), seed=rng)
            verdict = exchangeability_gate(p, n_ref=n_ref, alpha=alpha, n_sims=500)
            alarms += verdict.p_value <= alpha
            gate_alarms += verdict.failed
            bound_positive += verdict.lower_bound > 0
        assert alarms / runs <= alpha + 4 * np.sqrt(alpha * (1 - alpha) / runs), (n_ref, n_batch, alarms)
        hc_alarms += alarms
    total = runs * len(SIZES)
    limit = alpha * total + 3 * np.sqrt(total * alpha * (1 - alpha))
    assert hc_alarms <= limit and gate_alarms <= hc_alarms and bound_positive <= limit


@pytest.mark.parametrize("n_ref", [500, 5000])
def test_gate_power_and_bound_coverage_under_sparse_contamination(n_ref):
    # 100 batches of 2,000 rows, 3% (60 rows) shifted by 4 sd; alpha 0.05
    rng = np.random.default_rng([15, n_ref])
    alpha, runs, n_bad = 0.05, 100, 60
    failed, covered, bounds = 0, 0, []
    for _ in range(runs):
        s = rng.normal(size=2000)
        s[:n_bad] += 4.0
        p = conformal_pvalues(s, rng.normal(size=n_ref), seed=rng)
        verdict = exchangeability_gate(p, n_ref=n_ref, alpha=alpha, n_sims=500)
        failed += verdict.failed
        covered += verdict.lower_bound <= n_bad
        bounds.append(verdict.lower_bound)
    assert failed >= 0.9 * runs
    assert covered >= runs * (1 - alpha) - 3 * np.sqrt(runs * alpha * (1 - alpha))
    assert np.mean(bounds) > 10  # informative, not just valid


@pytest.mark.parametrize("n_ref", [100, 1000])
def test_bounds_cover_with_weak_contamination(n_ref):
    # weak shift: most contaminated rows are indistinguishable; 200 batches of 1,000 rows, 20% shifted 1.5 sd
    rng = np.random.default_rng([16, n_ref])
    alpha, runs, n_bad, covered, simes_covered, bounds = 0.1, 200, 200, 0, 0, []
    for _ in range(runs):
        s = rng.normal(size=1000)
        s[:n_bad] += 1.5
        p = conformal_pvalues(s, rng.normal(size=n_ref), seed=rng)
        bounds.append(conformal_true_discoveries(p, n_ref, alpha))
        covered += bounds[-1] <= n_bad
        simes_covered += true_discoveries(p, alpha) <= n_bad
    limit = runs * (1 - alpha) - 3 * np.sqrt(runs * alpha * (1 - alpha))
    assert covered >= limit and simes_covered >= limit and np.mean(bounds) > 5


def test_class_conditional_gate_false_alarms_and_grouped_bound():
    # 300 null batches: two classes at different score levels plus a pooled small class; alpha 0.05
    rng = np.random.default_rng(19)
    alpha, runs, alarms, positive = 0.05, 300, 0, 0
    yr = np.r_[np.zeros(300), np.ones(100), np.full(20, 2)]
    yb = np.r_[np.zeros(400), np.ones(150), np.full(30, 2)]
    for _ in range(runs):
        r = np.r_[rng.normal(0, 1, 300), rng.normal(3, 1, 100), rng.normal(1, 1, 20)]
        s = np.r_[rng.normal(0, 1, 400), rng.normal(3, 1, 150), rng.normal(1, 1, 30)]
        out = class_conditional_pvalues(s, yb, r, yr, seed=rng)
        verdict = exchangeability_gate(out.pvalues, out.groups, out.group, alpha=alpha, n_sims=500)
        alarms += verdict.p_value <= alpha
        positive += grouped_true_discoveries(out.pvalues, out.groups, out.group, alpha) > 0
    limit = runs * alpha + 3 * np.sqrt(runs * alpha * (1 - alpha))
    assert alarms <= limit and positive <= limit


def test_min_effect_spares_a_large_batch_with_a_negligible_departure():
    rng = np.random.default_rng(17)
    s = rng.normal(size=20000)
    s[:40] += 6.0  # 0.2% of rows: detectable, but below the 0.5% minimum effect
    p = conformal_pvalues(s, rng.normal(size=20000), seed=rng)
    verdict = exchangeability_gate(p, n_ref=20000, alpha=0.01, n_sims=300)
    assert verdict.p_value <= 0.01 and verdict.lower_bound > 0 and not verdict.failed
    assert verdict.lower_share <= 0.002


def test_hc_test_checks_group_sizes():
    with pytest.raises(ValueError):
        hc_test(np.random.default_rng(0).random(10), ((50, 9),))
