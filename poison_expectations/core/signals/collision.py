"""Clean-label feature collision (Shafahi et al. 2018), tabular form.

The attacker adds rows that keep a correct-looking label b (copied from a
real class-b base row) but sit, in feature space, on top of a target row
of class t, so a model trained on them moves the target to b. Their labels
agree with their immediate neighbours -- each other -- so a plain
neighbour-label check passes them. What gives them away is the pair:

1. a tight group: rows of one label packed closer together than rows
   usually are. Edges join a row to those of its k nearest neighbours
   (the shared neighbour graph) that share its label and lie within
   r = `radius_factor` x the median 1st-neighbour distance (of the
   reference when one is given); groups are the connected components with
   at least `min_group_size` rows. Cost O(n k).
2. surroundings of another class: the group's rows are judged without the
   group. With a reference, by the labels of their k nearest reference
   rows (a row is "unlike" its label when most of them carry another
   class), against the reference rows' own rate of that. Self-check: by a
   model trained on the batch minus every row with a tight same-label
   neighbour (every candidate group and the smaller fragments of one, which
   one-hot categorical differences can split off; exclusionary
   reclassification), against the model's held-out error for that class.
A group is a collision when at least `min_other_share` of its rows are
unlike their label and the one-sided binomial test against the baseline
gives p <= `alpha` (Bonferroni over groups). Its rows are flagged.

What it leaves to other signals: single mislabelled rows (label
consistency), loose clusters of relabelled rows (feature clustering,
spectral signatures), exact copies (near duplicates).

Fit and score. `fit` learns from the fitted table only: the radius, the
neighbour-majority baseline per class (what `score` tests a batch group
against), and the fitted table's own groups with their reclassification
(the self-check, `score_fitted`). `reference_scores` is each fitted row's
share of its k nearest fitted rows (itself excluded) that carry another
label; `row_scores` gives a batch row the same share among its k nearest
reference rows. Collision is a group test: these per-row shares are the
closest row-level quantity, not the group's score.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from poison_expectations.core.errors import InputError
from poison_expectations.core.params.clean_label_collision import CLEAN_LABEL_COLLISION
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.representation import (
    Reclassifier,
    class_codes,
    excess_test,
    plain,
    sample_ids,
)


class CleanLabelCollision(Signal):
    name = "collision"
    calibration = "class"
    own_flags = True  # a collision is a group finding: its rows are flagged together
    declaration = CLEAN_LABEL_COLLISION

    def fit(self, analysis) -> State:
        """Radius, neighbour baseline and, when the fitted table is the batch
        (self-check), its own groups and their reclassification."""
        p = self.params
        analysis.require_labels()
        fitted = analysis.fitted
        y = fitted.y
        n_classes = analysis.n_classes
        nb = analysis.fitted_neighbors(p["k"])
        radius = p["radius_factor"] * float(np.median(nb.distances[:, 0]))
        other = fitted.y[nb.indices] != y[:, None]
        major = _majority(y[nb.indices], n_classes)
        groups: list = []
        packed = np.zeros(fitted.n, dtype=bool)
        if analysis.reference is None:  # against a reference, score finds the batch's groups
            groups, packed = tight_groups(nb.indices, nb.distances, y, radius, p["min_group_size"])
        unlike, self_baseline = self._reclassified(fitted.X, y, groups, packed, n_classes)
        group = np.full(fitted.n, -1, dtype=np.int64)
        for number, members in enumerate(groups):
            group[members] = number
        return {
            "classes": [plain(v) for v in analysis.classes],
            "radius": radius,
            "baseline_wrong": np.bincount(y[major != y], minlength=n_classes).astype(np.int64),
            "baseline_rows": np.bincount(y, minlength=n_classes).astype(np.int64),
            "self_check": analysis.reference is None, "group": group, "n_groups": len(groups), "unlike": unlike,
            "self_baseline_wrong": self_baseline[0], "self_baseline_rows": self_baseline[1],
            "reference_scores": other.mean(axis=1).astype(float),
        }

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the fitted table's groups and their reclassification."""
        if not state["self_check"]:
            raise InputError(f"{self.name}: this state was fitted as a reference; it scores batches, not its own rows")
        groups = [np.flatnonzero(state["group"] == g) for g in range(state["n_groups"])]
        baseline = _by_code(analysis, state, state["self_baseline_wrong"], state["self_baseline_rows"])
        return self._report(analysis, groups, state["unlike"], baseline, state["radius"], "self")

    def score(self, state: State, analysis) -> SignalResult:
        """Batch groups (tight within the stored radius), judged by their
        nearest reference rows' labels against the stored baseline."""
        p = self.params
        y = analysis.require_labels()
        ref = analysis.require_reference()
        nb = analysis.neighbors("self", p["k"])
        groups, _ = tight_groups(nb.indices, nb.distances, y, state["radius"], p["min_group_size"])
        unlike = np.full(len(y), -1, dtype=np.int64)
        members = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        ref_nb = analysis.neighbors("reference", p["k"])
        majority = _majority(ref.y[ref_nb.indices[members]], analysis.n_classes)
        other = majority != y[members]
        unlike[members[other]] = majority[other]
        baseline = _by_code(analysis, state, state["baseline_wrong"], state["baseline_rows"])
        return self._report(analysis, groups, unlike, baseline, state["radius"], "reference")

    def batch_scores(self, state: State, analysis, result=None) -> np.ndarray:
        """Batch rows on the scale of `reference_scores`: the share of their k
        nearest reference rows that carry another label."""
        y = analysis.require_labels()
        ref = analysis.require_reference()
        nb = analysis.neighbors("reference", self.params["k"])
        return (ref.y[nb.indices] != y[:, None]).mean(axis=1).astype(float)

    def _report(self, analysis, groups, unlike, baseline, radius, mode) -> SignalResult:
        """Test each group against its class baseline; flag the collisions."""
        y = analysis.batch.y
        n = len(y)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        group_col = np.full(n, -1, dtype=np.int64)
        reports = []
        for number, members in enumerate(groups):
            report = self._group_report(analysis, number, members, unlike, baseline, len(groups))
            reports.append(report)
            scores[members] = report["unlike_share"]
            if report["collision"]:
                flags[members] = True
                group_col[members] = number
                reasons[members] = (f"clean-label collision: one of {len(members)} tightly packed rows labelled "
                                    f"{report['label']!r} whose surroundings are {report['looks_like']!r} "
                                    f"({report['unlike_share']:.0%} of the group)")
        found = [r for r in reports if r["collision"]]
        lines = [f"Clean-label collision: {r['rows']} rows labelled {r['label']!r} packed together where the "
                 f"data says {r['looks_like']!r} ({r['unlike_share']:.0%}), e.g. ids "
                 f"{', '.join(map(str, r['ids'][:5]))}" for r in found]
        summary = {"radius": radius, "candidate_groups": len(groups), "groups": found,
                   "rejected_groups": len(groups) - len(found), "mode": mode, "console_lines": lines}
        # against a reference the gate is Higher Criticism over the rows' conformal p-values (valid),
        # not these group tests: a group's members share neighbourhoods, which the binomial test
        # treats as independent (on titanic's 24 distinct rows it failed 3 clean batches of 3)
        return SignalResult(self.name, scores, flags, reasons, summary, {"collision_group": group_col})

    def _group_report(self, analysis, number, members, unlike, baseline, n_groups) -> dict:
        p = self.params
        c = int(analysis.batch.y[members[0]])
        other = unlike[members]
        k = int(np.count_nonzero(other >= 0))
        share = k / len(members)
        base_wrong, base_rows = baseline.get(c, (0, 0))
        p_value = excess_test(k, len(members), base_wrong, base_rows)
        collision = share >= p["min_other_share"] and p_value * n_groups <= p["alpha"]
        looks = np.bincount(other[other >= 0], minlength=analysis.n_classes)
        looks_like = plain(analysis.classes[int(looks.argmax())]) if k else None
        return {"group": number, "label": plain(analysis.classes[c]), "rows": int(len(members)),
                "unlike_share": share, "looks_like": looks_like, "p_value": p_value,
                "baseline_rate": base_wrong / base_rows if base_rows else 0.0,
                "collision": bool(collision), "ids": sample_ids(analysis.batch.ids, members)}

    def _reclassified(self, X, y, groups, packed, n_classes):
        """Self-check surroundings: per row the class a model trained without
        the packed rows predicts when that is not its label (-1 otherwise, or
        when not in a group); per class the model's held-out (errors, rows)."""
        unlike = np.full(len(y), -1, dtype=np.int64)
        members = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        if len(members) == 0:
            return unlike, (np.zeros(n_classes, dtype=np.int64), np.zeros(n_classes, dtype=np.int64))
        keep = ~packed
        result = Reclassifier(self.params["max_train_rows"], self.params["random_state"]).run(
            X[keep], y[keep], X[members], n_classes)
        other = result.predicted != y[members]
        unlike[members[other]] = result.predicted[other]
        wrong = np.array([int(round(result.baseline_error[c] * result.baseline_rows[c])) for c in range(n_classes)],
                         dtype=np.int64)
        return unlike, (wrong, np.asarray(result.baseline_rows, dtype=np.int64))


def _by_code(analysis, state, wrong, rows) -> dict[int, tuple[int, int]]:
    """Stored per-class (wrong, rows) keyed by this analysis's class codes."""
    return {code: (int(wrong[i]), int(rows[i])) for i, code in class_codes(analysis, state["classes"]).items()}

def tight_groups(indices: np.ndarray, distances: np.ndarray, y: np.ndarray, radius: float,
                 min_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Connected components of same-label kNN edges no longer than `radius`
    with at least `min_size` rows, and a mask of rows in any component of 2+."""
    n = len(y)
    rows = np.repeat(np.arange(n), indices.shape[1])
    cols = indices.ravel()
    keep = (distances.ravel() <= radius) & (y[rows] == y[cols])
    graph = coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(n, n))
    _, component = connected_components(graph, directed=True, connection="weak")
    sizes = np.bincount(component)
    packed = sizes[component] >= 2
    big = np.flatnonzero(sizes >= min_size)
    order = np.argsort(component, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return [order[starts[c]:starts[c + 1]] for c in big], packed


def _majority(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Most common label per row of a (rows, k) label matrix."""
    if labels.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    for c in range(n_classes):
        counts[:, c] = (labels == c).sum(axis=1)
    return counts.argmax(axis=1)

