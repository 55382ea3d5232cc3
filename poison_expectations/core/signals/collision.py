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
   class). Self-check: by a model trained on the batch minus every row with
   a tight same-label neighbour (every candidate group and the smaller
   fragments of one, which one-hot categorical differences can split off;
   exclusionary reclassification).
A group is a collision when at least `min_other_share` of its rows are
unlike their label and its test gives p <= `alpha` (Bonferroni over
groups). Its rows are flagged. The test:
- with a reference (`judge_groups`): an excess of the group's label where
  it lies. Around up to 16 of its rows, within the fitted rows' median
  k-th neighbour distance, the batch's share of that label's rows is
  hypergeometric if batch and reference came from one distribution
  (Simes over the rows). Rows repeated in both tables with either label
  (titanic) are no evidence; the binomial test this replaces counted each
  of hundreds of identical rows as independent and named 19-22% of clean
  titanic batches as collisions;
- self-check: the one-sided binomial test of the group's unlike rows
  against the model's held-out error for that class (nominal: it treats
  the rows as independent).

What it leaves to other signals: single mislabelled rows (label
consistency), loose clusters of relabelled rows (feature clustering,
spectral signatures), exact copies (near duplicates).

Fit and score. `fit` learns from the fitted table only: the radius, the
local radius of the test, and the fitted table's own groups with their reclassification
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
from poison_expectations.core.signals.near_duplicates_density import hypergeometric_pvalues
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
        local_radius = max(radius, float(np.median(nb.distances[:, -1])))
        other = fitted.y[nb.indices] != y[:, None]
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
            "radius": radius, "local_radius": local_radius,
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
        unlike = state["unlike"]
        pvalues = [excess_test(int(np.count_nonzero(unlike[g] >= 0)), len(g),
                               *baseline.get(int(analysis.batch.y[g[0]]), (0, 0))) for g in groups]
        return self._report(analysis, groups, unlike, pvalues, state["radius"], "self")

    def score(self, state: State, analysis) -> SignalResult:
        """Batch groups (tight within the stored radius), each judged against
        the reference where it lies (`judge_groups`)."""
        p = self.params
        y = analysis.require_labels()
        nb = analysis.neighbors("self", p["k"])
        groups, _ = tight_groups(nb.indices, nb.distances, y, state["radius"], p["min_group_size"])
        reps = representatives(groups, p["random_state"])
        at = np.concatenate(reps) if reps else np.zeros(0, dtype=np.int64)
        near = _count_within(analysis, "self", at, _local_radius(state), y[at])  # one search for every rep
        return self.judge_groups(state, analysis, groups, reps, per_group(near, reps))

    def judge_groups(self, state: State, analysis, groups: list[np.ndarray], reps: list[np.ndarray],
                     batch_near: list[np.ndarray], class_rows: np.ndarray | None = None) -> SignalResult:
        """Judge batch groups against the reference. `groups[g]`: row positions
        in `analysis.batch`; `reps[g]`: some of its rows (all, or a random
        REPRESENTATIVES); `batch_near[g]`: per rep, the other batch rows of its
        label within `local_radius` of it. Reads only those rows and the
        reference, so an engine that finds groups its own way (Spark) judges
        them here. `class_rows`: the batch's rows per class code, when
        `analysis.batch` holds only some of them (Spark: the groups' members).

        The test is an excess of the group's label b where it lies. Around a
        rep (a ball of the fixed `local_radius`: the fitted rows' median k-th
        neighbour distance), if batch and reference came from one
        distribution, the batch's share of the label-b rows in the ball is
        hypergeometric (the rep itself left out, so the ball does not depend
        on who is in it). A group's p-value is Simes' over its reps (valid
        under their positive dependence), Bonferroni over groups. Rows
        repeated in both tables (titanic's identical passengers of either
        fate) are no evidence; a pile of b where the reference has few b is."""
        y = analysis.require_labels()
        ref = analysis.require_reference()
        unlike = np.full(len(y), -1, dtype=np.int64)
        members = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        ref_nb = analysis.neighbors("reference", self.params["k"])
        majority = _majority(ref.y[ref_nb.indices[members]], analysis.n_classes)
        other = majority != y[members]
        unlike[members[other]] = majority[other]
        at = np.concatenate(reps) if reps else np.zeros(0, dtype=np.int64)
        label = y[at]  # a group's rows share one label
        in_ref = _count_within(analysis, "reference", at, _local_radius(state), label)  # one search for every rep
        in_batch = np.concatenate(batch_near) if batch_near else np.zeros(0, dtype=np.int64)
        batch_rows = np.bincount(y, minlength=analysis.n_classes) if class_rows is None else class_rows
        ref_rows = np.bincount(ref.y, minlength=analysis.n_classes)
        p_rows = np.ones(len(at))
        for c in np.unique(label):  # the hypergeometric tail of near_duplicates_density, without a random u
            mine = label == c
            p_rows[mine] = hypergeometric_pvalues(in_batch[mine], in_ref[mine], int(batch_rows[c]), int(ref_rows[c]),
                                                  np.ones(int(mine.sum())))
        pvalues = [simes(part) for part in per_group(p_rows, reps)]
        return self._report(analysis, groups, unlike, pvalues, state["radius"], "reference")

    def batch_scores(self, state: State, analysis, result=None) -> np.ndarray:
        """Batch rows on the scale of `reference_scores`: the share of their k
        nearest reference rows that carry another label."""
        y = analysis.require_labels()
        ref = analysis.require_reference()
        nb = analysis.neighbors("reference", self.params["k"])
        return (ref.y[nb.indices] != y[:, None]).mean(axis=1).astype(float)

    def _report(self, analysis, groups, unlike, pvalues, radius, mode) -> SignalResult:
        """Flag the groups that look like another class and whose p-value
        (`pvalues[g]`) holds with Bonferroni over the groups."""
        y = analysis.batch.y
        n = len(y)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        group_col = np.full(n, -1, dtype=np.int64)
        reports = []
        for number, members in enumerate(groups):
            report = self._group_report(analysis, number, members, unlike, pvalues[number], len(groups))
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
        # against a reference the gate is Higher Criticism over the rows' conformal p-values, not
        # these group tests: the binomial test treats a group's rows as independent draws
        return SignalResult(self.name, scores, flags, reasons, summary, {"collision_group": group_col})

    def _group_report(self, analysis, number, members, unlike, p_value, n_groups) -> dict:
        p = self.params
        c = int(analysis.batch.y[members[0]])
        other = unlike[members]
        k = int(np.count_nonzero(other >= 0))
        share = k / len(members)
        collision = share >= p["min_other_share"] and p_value * n_groups <= p["alpha"]
        looks = np.bincount(other[other >= 0], minlength=analysis.n_classes)
        looks_like = plain(analysis.classes[int(looks.argmax())]) if k else None
        return {"group": number, "label": plain(analysis.classes[c]), "rows": int(len(members)),
                "unlike_share": share, "looks_like": looks_like, "p_value": p_value,
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


REPRESENTATIVES = 16  # rows of a group whose surroundings are counted
MAX_SEARCH = 4096  # neighbours a crowded spot is searched for at most


def representatives(groups: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Per group: its rows, or REPRESENTATIVES of them drawn at random (seeded)."""
    rng = np.random.default_rng(seed)
    return [g if len(g) <= REPRESENTATIVES else rng.choice(g, REPRESENTATIVES, replace=False) for g in groups]


def per_group(values: np.ndarray, reps: list[np.ndarray]) -> list[np.ndarray]:
    """`values` of the concatenated reps, split back by group."""
    return np.split(values, np.cumsum([len(r) for r in reps])[:-1]) if reps else []


def _local_radius(state: State) -> float:
    if "local_radius" not in state:
        raise InputError("clean_label_collision: the profile predates the collision test's local radius; "
                         "fit it again (poison-check fit)")
    return float(state["local_radius"])


def _count_within(analysis, against: str, rows: np.ndarray, radius: float, labels: np.ndarray) -> np.ndarray:
    """Per batch row in `rows`: rows of the batch ("self", the row itself left
    out) or of the reference with the row's label within `radius`. The
    search doubles its k while a list is full, so a row repeated hundreds
    of times is counted in full (up to MAX_SEARCH neighbours)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    table = analysis.require_reference() if against == "reference" else analysis.batch
    most = min(MAX_SEARCH, table.n - (against == "self"))
    k = min(32, most)
    while True:
        nb = analysis.search_rows(against, rows, k)
        if nb.k >= most or not (nb.distances[:, -1] <= radius).any():
            within = (nb.distances <= radius) & (table.y[nb.indices] == labels[:, None])
            return within.sum(axis=1)
        k = min(2 * nb.k, most)


def simes(pvalues: np.ndarray) -> float:
    """Simes' combination: min_j p_(j) m / j (valid under positive dependence)."""
    p = np.sort(np.asarray(pvalues, dtype=float))
    return float(min(1.0, (p * len(p) / np.arange(1, len(p) + 1)).min())) if len(p) else 1.0
