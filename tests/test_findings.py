"""How poison_score orders rows (runner.build_findings)."""

from types import SimpleNamespace

import numpy as np

from poison_expectations.gx.runner import build_findings
from poison_expectations.core.signals.base import SignalResult


def result(name, scores, flags):
    scores = np.asarray(scores, dtype=float)
    flags = np.asarray(flags, dtype=bool)
    return SignalResult(name, scores, flags, np.where(flags, f"{name} says so", ""))


def findings_for(*results):
    n = len(results[0].scores)
    analysis = SimpleNamespace(batch=SimpleNamespace(n=n, ids=np.arange(n)), id_name="row_index")
    return build_findings(analysis, list(results))


def test_flagged_rows_rank_above_every_unflagged_row():
    label = result("label", [0.2, 0.9, 0.95, 0.1], [False, False, True, False])
    noise = result("noise", [1.0, 0.0, 0.0, 1.0], [False, False, False, False])
    findings = findings_for(label, noise)
    score = findings["poison_score"].to_numpy()
    assert score[2] > 0.5 and (score[[0, 1, 3]] < 0.5).all()
    assert findings["flagged"].tolist() == [False, False, True, False]
    assert findings.loc[2, "reasons"] == "label says so"


def test_a_signal_that_flagged_nothing_does_not_reorder_the_unflagged_rows():
    label = result("label", [0.2, 0.9, 0.95, 0.1, 0.5], [False, False, True, False, False])
    alone = findings_for(label)["poison_score"].to_numpy()
    noise = result("noise", [1.0, 0.0, 0.3, 0.9, 0.2], [False] * 5)
    together = findings_for(label, noise)["poison_score"].to_numpy()
    unflagged = [0, 1, 3, 4]
    assert np.argsort(together[unflagged]).tolist() == np.argsort(alone[unflagged]).tolist() == [2, 0, 3, 1]


def test_without_any_flag_every_signal_has_a_say():
    first = result("first", [0.1, 0.2, 0.3], [False] * 3)
    second = result("second", [0.9, 0.5, 0.0], [False] * 3)
    score = findings_for(first, second)["poison_score"].to_numpy()
    assert np.allclose(score, 0.5 * np.array([0.5, 0.5, 0.5]))  # opposite ranks cancel
