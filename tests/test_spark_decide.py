"""The Spark engine's driver decisions from small aggregates are exactly the
core verdicts on the full p-value arrays (no Spark needed)."""

from __future__ import annotations

import numpy as np
import pytest

from poison_expectations.core.verdicts import benjamini_hochberg, class_conditional_pvalues, exchangeability_gate
from poison_expectations.engines.spark import decide
from poison_expectations.engines.spark.scoring import class_keys, class_reference_sizes


def _contaminated_pvalues(rng, n_ref, n_batch, share):
    ref = rng.random(n_ref)
    batch = rng.random(n_batch) + np.where(rng.random(n_batch) < share, 1.0, 0.0)  # planted high scores
    return ref, batch


@pytest.mark.parametrize("share", [0.0, 0.05])
def test_marginal_gate_from_small_pvalues_equals_the_full_gate(share):
    rng = np.random.default_rng(3)
    from poison_expectations.core.verdicts import conformal_pvalues

    ref, batch = _contaminated_pvalues(rng, 800, 1500, share)
    p = conformal_pvalues(batch, ref, seed=1)
    full = exchangeability_gate(p, n_ref=len(ref), alpha=0.01, n_sims=500)
    small = p <= decide.signal_alpha0({0: len(p)}, {0: len(ref)})
    mine = decide.signal_gate(p[small], np.zeros(small.sum()), {0: len(p)}, {0: len(ref)}, alpha=0.01, n_sims=500)
    assert (mine["statistic"], mine["p_value"], mine["lower_bound"], mine["failed"]) == (
        full.statistic, full.p_value, full.lower_bound, full.failed)
    assert mine["failed"] == (share > 0)


def test_class_conditional_gate_from_small_pvalues_equals_the_full_gate():
    rng = np.random.default_rng(4)
    ref_y = np.r_[np.zeros(600, int), np.ones(400, int), np.full(30, 2)]  # class 2 is pooled (< 50 rows)
    y = rng.choice(3, size=1200, p=[0.5, 0.45, 0.05])
    ref_s, s = rng.random(len(ref_y)), rng.random(len(y)) + (rng.random(len(y)) < 0.04)
    cc = class_conditional_pvalues(s, y, ref_s, ref_y, seed=2)
    full = exchangeability_gate(cc.pvalues, cc.groups, cc.group, alpha=0.01, n_sims=500)
    keys = class_keys(ref_y, y)
    assert set(keys.tolist()) == {0, 1, -1}
    rows = {int(k): int((keys == k).sum()) for k in np.unique(keys)}
    small = cc.pvalues <= decide.ALPHA0
    mine = decide.signal_gate(cc.pvalues[small], keys[small], rows, class_reference_sizes(ref_y), alpha=0.01,
                              n_sims=500)
    assert (mine["statistic"], mine["lower_bound"], mine["failed"]) == (full.statistic, full.lower_bound, full.failed)
    assert mine["p_value"] == pytest.approx(full.p_value)
    assert mine["failed"]


def test_bh_cut_flags_exactly_the_benjamini_hochberg_rows():
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.random(5000), rng.random(200) * 1e-4])
    flagged, _ = benjamini_hochberg(p, 0.1)
    cut = decide.bh_cut(p[p <= decide.collect_cut(0.1)], len(p), 0.1)
    assert np.array_equal(p <= cut, flagged) and flagged.sum() >= 200
    assert decide.bh_cut(rng.random(50) * 0 + 0.5, 1000, 0.1) == -1.0  # nothing below: nothing flagged
