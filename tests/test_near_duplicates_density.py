"""Near duplicates against a reference as a density comparison (issue 15, item 4):
the batch test and row p-values of core/signals/near_duplicates_density.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_digits, load_iris

from poison_expectations import testing
from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.fitting import fit_profile
from poison_expectations.core.signals.near_duplicates import NearDuplicates
from poison_expectations.core.signals.near_duplicates_density import (
    PairGraph, _simulate, null_moments, pair_totals, partner_counts, permutation_test, removal_lower_bound,
    row_pvalues)

ROLES = Roles(label_column="label", id_column="row_id")
ALPHA = 0.05
SPLITS = 40
# P(Binomial(40, 0.05) >= 7) = 0.014: a valid level-0.05 test exceeds 6 false alarms in 40 splits rarely
MAX_ALARMS = int(stats.binom.ppf(0.99, SPLITS, ALPHA))


def result_against(batch: pd.DataFrame, reference: pd.DataFrame, **params):
    return build_analysis(batch, ROLES, Options(), reference=reference).result(NearDuplicates(**params))


def with_ids(frame: pd.DataFrame, prefix: str = "r") -> pd.DataFrame:
    frame = frame.reset_index(drop=True).copy()
    frame["row_id"] = [f"{prefix}{i}" for i in range(len(frame))]
    return frame


def continuous_table(n: int, d: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(d)])
    frame["label"] = (X[:, 0] > 0).astype(int)
    return with_ids(frame)


def sklearn_table(loader) -> pd.DataFrame:
    data = loader()
    frame = pd.DataFrame(data.data, columns=[f"x{i}" for i in range(data.data.shape[1])])
    frame["label"] = data.target
    return with_ids(frame)


def discrete_table(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Integer and categorical columns: most rows have natural exact copies."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.integers(0, 4, n), "b": rng.integers(0, 3, n),
                          "c": rng.choice(["u", "v", "w"], n), "d": rng.poisson(2, n)})
    frame["label"] = (frame["a"] + frame["d"] > 3).astype(int)
    return with_ids(frame)


def split(frame: pd.DataFrame, seed: int, share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(share * len(frame))
    return frame.iloc[order[:cut]].reset_index(drop=True), frame.iloc[order[cut:]].reset_index(drop=True)


def copy_clusters(batch: pd.DataFrame, clusters: int, copies: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """`clusters` batch rows each copied `copies` times with new ids, replacing other
    rows so the batch keeps its size; True for the seeds and their copies."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(batch), clusters + clusters * copies, replace=False)
    seeds, dropped = chosen[:clusters], chosen[clusters:]
    new = batch.iloc[np.repeat(seeds, copies)].copy()
    new["row_id"] = [f"copy{i}" for i in range(len(new))]
    kept = batch.drop(batch.index[dropped])
    frame = pd.concat([kept, new], ignore_index=True)
    seed_ids = set(batch["row_id"].iloc[seeds])
    return frame, (frame["row_id"].str.startswith("copy") | frame["row_id"].isin(seed_ids)).to_numpy()


# -- must catch -----------------------------------------------------------------------------

@pytest.mark.parametrize("table", ["generated", "breast_cancer"])
def test_three_clusters_of_four_exact_copies_against_a_small_reference(table):
    """Case (a): 1,438 batch rows against 360 reference rows (breast cancer: 455 against 114).
    Distribution-free it cannot be called: all 15 rows (3 seeds, 12 copies) inside an 80%
    batch has chance ~0.8^15 = 0.035 whatever the data. Exact copies of continuous values
    are what is improbable: the continuity test (reported, not in p_value) calls it."""
    full = continuous_table(1798, seed=1) if table == "generated" else sklearn_table(load_breast_cancer)
    batch, reference = split(full, seed=3)
    poisoned, _ = copy_clusters(batch, 3, 4, seed=5)
    test = result_against(poisoned, reference).batch_test
    assert test["p_value"] > 0.01 and test["removal_bounds"]["0.01"] == 0
    assert test["close_pairs"]["exact_batch_batch"] == 3 * 10
    assert test["copies"]["active"] and test["copies"]["p_value"] < 1e-5
    assert test["p_value_assuming_continuous"] < 1e-4
    assert test["copies"]["copied_rows_lower_bound"] == 12  # 15 rows in 3 groups: at most one clean per group
    clean = result_against(batch, reference).batch_test
    assert clean["p_value_assuming_continuous"] > ALPHA and clean["copies"]["copied_rows_lower_bound"] == 0


def test_natural_resubmissions_in_continuous_data_do_not_fail_the_gate():
    """0.5% of rows resubmitted once: the reference often shows none of them, so the
    continuity test (which assumes no atoms) would fire; the permutation p-value may not."""
    base = continuous_table(1762, seed=4)
    full = pd.concat([base, with_ids(base.sample(9, random_state=1), "dup")], ignore_index=True)
    alarms = sum(result_against(*split(full, seed)).batch_test["p_value"] <= ALPHA for seed in range(SPLITS))
    assert alarms <= MAX_ALARMS


def test_half_of_the_batch_copied_with_new_ids_against_a_reference():
    """Case (b), on data whose resolution is too coarse for the continuity test: the
    distribution-free permutation test alone fails the batch at its resolution (1e-4)."""
    full = testing.make_tabular(2250, random_state=7)
    batch, reference = with_ids(full.iloc[:1500]), with_ids(full.iloc[1500:], "ref")
    copies = with_ids(batch, "copy")
    poisoned = pd.concat([batch, copies], ignore_index=True)
    result = result_against(poisoned, reference)
    test = result.batch_test
    assert not test["copies"]["active"]
    assert test["p_value"] <= 1e-4 and test["method"] == "permutation"
    assert test["close_pairs"]["exact_batch_batch"] >= 1500
    assert 0 < test["removal_bounds"]["0.01"] <= 1500
    # one batch partner is no evidence for a single row (its partner is in the batch with
    # chance ~ n_b / N = 0.8): only the count over all rows is; the row p-values stay valid
    assert (result.pvalues >= 0.0).all() and (result.pvalues <= 1.0).all()
    assert result_against(batch, reference).batch_test["p_value"] > ALPHA


def test_a_flood_of_near_copies_fails_at_one_radius_for_both_tables():
    full = testing.make_tabular(4500, random_state=21)
    reference, batch = with_ids(full.iloc[:3000], "ref"), with_ids(full.iloc[3000:])
    poisoned = testing.near_duplicate_flood(batch, rate=0.02, random_state=8)
    result = result_against(poisoned.frame, reference)
    assert result.batch_test["p_value"] <= 1e-4
    assert np.median(result.pvalues[poisoned.is_poison]) < 0.01
    # the reference is 4x smaller than the batch: the clean batch still passes
    clean = result_against(reference, batch.iloc[:750]).batch_test
    assert clean["p_value"] > ALPHA


def test_flood_rows_count_every_copy_beyond_k_and_the_gate_bounds_them():
    """A copied row has more partners than k: its list is searched again (DEEP_K), so
    its p-value reflects all copies, and the closed-testing bound proves part of the flood."""
    from poison_expectations.core.verdicts.gate import family_verdict

    full = testing.make_tabular(4500, random_state=21)
    reference, batch = with_ids(full.iloc[:3000], "ref"), with_ids(full.iloc[3000:])
    poisoned = testing.near_duplicate_flood(batch, rate=0.02, random_state=8)
    result = result_against(poisoned.frame, reference, k=10)
    assert result.batch_test["saturated_rows"] == 0
    poison_p = result.pvalues[poisoned.is_poison]
    # every flood row has >= 10 batch partners: with k = 10 alone its p-value could not go below ~(1/2)^10
    assert np.median(poison_p) < 0.5 ** 14
    verdict = family_verdict(result, alpha=0.001, min_effect=0.005)
    assert verdict["failed"]
    proven = verdict["lower_share"] * len(poisoned.frame)
    # at least a third of the 31 copies proven; never more than the copies plus their 3 originals
    assert poisoned.is_poison.sum() / 3 <= proven <= poisoned.is_poison.sum() + 3


# -- must not fire -------------------------------------------------------------------------

@pytest.mark.parametrize("name, radius", [("breast_cancer", None), ("breast_cancer", 1.5), ("discrete", None)])
def test_clean_random_splits_false_alarms_within_the_binomial_bound(name, radius):
    """Radius 1.5 gives ~10 batch-batch pairs per split, so the permutation null is
    exercised on continuous data too (at the default radius nearly no pair exists)."""
    full = sklearn_table(load_breast_cancer) if name == "breast_cancer" else discrete_table()
    p_batch, p_rows = [], []
    for seed in range(SPLITS):
        batch, reference = split(full, seed)
        result = result_against(batch, reference, radius=radius)
        p_batch.append(result.batch_test["p_value"])
        p_rows.append(result.pvalues)
    assert int((np.array(p_batch) <= ALPHA).sum()) <= MAX_ALARMS
    rows = np.concatenate(p_rows)
    assert abs(np.mean(rows <= ALPHA) - ALPHA) < 0.015  # row p-values are uniform under the null


@pytest.mark.parametrize("loader", [load_iris, load_digits])
def test_tables_with_natural_duplicates_do_not_alarm(loader):
    full = sklearn_table(loader)
    alarms = sum(result_against(*split(full, seed)).batch_test["p_value"] <= ALPHA for seed in range(10))
    assert alarms <= 2  # P(Binomial(10, 0.05) >= 3) = 0.012


# -- the permutation machinery -----------------------------------------------------------------

def random_graph(seed: int, n_b: int = 60, n_r: int = 20) -> PairGraph:
    """A pooled graph with exact-copy groups and near pairs, batch = the first n_b rows."""
    rng = np.random.default_rng(seed)
    n = n_b + n_r
    group = np.full(n, -1)
    group[rng.choice(n, 24, replace=False)] = np.repeat(np.arange(6), 4)
    u, v = rng.integers(0, n, 30), rng.integers(0, n, 30)
    keep = (u != v) & ((group[u] != group[v]) | (group[u] < 0))
    pairs = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)])[:, keep], axis=1)
    return relabel(PairGraph(n_b, n_r, pairs[0], pairs[1], group, np.zeros(6, int), np.zeros(6, int), 0), np.arange(n))


def relabel(g: PairGraph, order: np.ndarray) -> PairGraph:
    """The same graph with pooled row i moved to position order[i] (new batch/reference labels)."""
    u, v = order[g.near_u], order[g.near_v]
    group = np.full(g.n, -1)
    group[order] = g.group
    n_g = int(g.group.max()) + 1
    gb = np.bincount(group[:g.n_batch][group[:g.n_batch] >= 0], minlength=n_g)
    gr = np.bincount(group[g.n_batch:][group[g.n_batch:] >= 0], minlength=n_g)
    return PairGraph(g.n_batch, g.n_ref, np.minimum(u, v), np.maximum(u, v), group, gb, gr, 0)


def test_permutation_p_values_are_valid_under_random_labels():
    base = random_graph(0)
    rng = np.random.default_rng(1)
    p = []
    for _ in range(300):
        g = relabel(base, rng.permutation(base.n))
        p.append(permutation_test(g, pair_totals(g)["batch_batch"], rng, n_sims=199)["p_value"])
    p = np.array(p)
    for level in (0.05, 0.1, 0.25):
        # P(p <= level) <= level; 300 draws: allow 2.5 binomial standard deviations
        assert np.mean(p <= level) <= level + 2.5 * np.sqrt(level * (1 - level) / 300)


def test_null_moments_match_simulation_and_row_p_values_are_uniform():
    g = random_graph(2)
    sims = _simulate(g, 20000, np.random.default_rng(3))
    mean, variance = null_moments(g)
    assert sims.mean() == pytest.approx(mean, rel=0.02)
    assert sims.var() == pytest.approx(variance, rel=0.05)
    rng = np.random.default_rng(4)
    p = np.concatenate([row_pvalues(*partner_counts(relabel(g, rng.permutation(g.n))), g.n_batch, g.n_ref, rng)
                        for _ in range(300)])
    for level in (0.01, 0.05, 0.2):
        assert np.mean(p <= level) == pytest.approx(level, abs=0.01)


def with_planted_copies(g: PairGraph, planted: int) -> PairGraph:
    """`planted` extra batch rows that are exact copies of each other (a new group)."""
    n_b = g.n_batch
    move = lambda i: np.where(i >= n_b, i + planted, i)  # noqa: E731 - reference rows shift up
    n_g = int(g.group.max()) + 1
    group = np.concatenate([g.group[:n_b], np.full(planted, n_g), g.group[n_b:]])
    return PairGraph(n_b + planted, g.n_ref, move(g.near_u), move(g.near_v), group,
                     np.append(g.group_batch, planted), np.append(g.group_ref, 0), 0)


def test_removal_lower_bound_exceeds_the_contaminated_rows_at_most_alpha_of_the_time():
    base = random_graph(5)
    rng = np.random.default_rng(6)
    for planted in (0, 12):
        over = 0
        for _ in range(300):
            g = with_planted_copies(relabel(base, rng.permutation(base.n)), planted)
            a, _ = partner_counts(g)
            over += removal_lower_bound(g, pair_totals(g)["batch_batch"], a, 0.1) > planted
        assert over / 300 <= 0.1 + 2.5 * np.sqrt(0.09 / 300)
    g = with_planted_copies(relabel(base, rng.permutation(base.n)), 60)
    assert 0 < removal_lower_bound(g, pair_totals(g)["batch_batch"], partner_counts(g)[0], 0.1) <= 60


# -- interface --------------------------------------------------------------------------------

def test_a_profile_gives_the_same_test_as_the_reference():
    full = testing.make_tabular(2400, random_state=3)
    reference, batch = with_ids(full.iloc[:1200], "ref"), with_ids(full.iloc[1200:])
    poisoned = testing.near_duplicate_flood(batch, rate=0.02, random_state=2).frame
    roles = Roles(label_column="label", id_column="row_id", source_column="source")
    profile = fit_profile(reference, roles, Options(), [NearDuplicates()], meta={"plugin_version": "test"})
    one = build_analysis(poisoned, roles, Options(), profile=profile).result(NearDuplicates())
    two = build_analysis(poisoned, roles, Options(), reference=reference).result(NearDuplicates())
    assert one.batch_test["p_value"] == two.batch_test["p_value"] < 0.001
    np.testing.assert_allclose(one.pvalues, two.pvalues)
    assert len(one.pvalues) == len(poisoned) and "suspicious_share" in one.summary
    json.dumps(one.batch_test)
    json.dumps(one.summary["density_test"])


def test_self_check_keeps_its_behaviour():
    frame = testing.make_tabular(600, random_state=5)
    result = build_analysis(frame, Roles(label_column="label", id_column="row_id"), Options()).result(NearDuplicates())
    assert result.batch_test is None and result.pvalues is None


def test_self_check_reports_exact_copies_of_continuous_rows():
    """Case (b) in self-check: reported as a continuity test in the summary (not gated:
    with no reference nothing can tell legitimate repeats from a flood)."""
    half = continuous_table(1500, seed=2)
    frame = pd.concat([half, with_ids(half, "copy")], ignore_index=True)
    roles = Roles(label_column="label", id_column="row_id")
    copied = build_analysis(frame, roles, Options()).result(NearDuplicates()).summary["exact_copy_test"]
    assert copied["active"] and copied["p_value"] < 1e-3
    assert copied["exact_pairs"] == 1500 and copied["copied_rows_lower_bound"] == 1500
    clean = build_analysis(continuous_table(3000, seed=2), roles, Options()).result(NearDuplicates())
    assert clean.summary["exact_copy_test"]["p_value"] == 1.0
    json.dumps(clean.summary["exact_copy_test"])
    coarse = build_analysis(testing.make_tabular(600, random_state=5), roles, Options()).result(NearDuplicates())
    assert not coarse.summary["exact_copy_test"]["active"]
