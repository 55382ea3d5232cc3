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
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from poison_expectations.core.params.clean_label_collision import CLEAN_LABEL_COLLISION
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.core.signals.representation import Reclassifier, excess_test, plain, sample_ids


class CleanLabelCollision(Signal):
    name = "collision"
    declaration = CLEAN_LABEL_COLLISION

    def run(self, analysis) -> SignalResult:
        p = self.params
        y = analysis.require_labels()
        n = len(y)
        nb = analysis.neighbors("self", p["k"])
        fit_nb = analysis.reference_neighbors(p["k"]) if analysis.reference is not None else nb
        radius = p["radius_factor"] * float(np.median(fit_nb.distances[:, 0]))
        groups, packed = tight_groups(nb.indices, nb.distances, y, radius, p["min_group_size"])
        unlike, baseline = self._surroundings(analysis, groups, packed, y)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        group_col = np.full(n, -1, dtype=np.int64)
        reports = []
        for number, members in enumerate(groups):
            c = int(y[members[0]])
            other = unlike[members]
            k = int(np.count_nonzero(other >= 0))
            share = k / len(members)
            base_wrong, base_rows = baseline[c]
            p_value = excess_test(k, len(members), base_wrong, base_rows)
            collision = share >= p["min_other_share"] and p_value * len(groups) <= p["alpha"]
            looks = np.bincount(other[other >= 0], minlength=analysis.n_classes)
            looks_like = plain(analysis.classes[int(looks.argmax())]) if k else None
            report = {"group": number, "label": plain(analysis.classes[c]), "rows": int(len(members)),
                      "unlike_share": share, "looks_like": looks_like, "p_value": p_value,
                      "baseline_rate": base_wrong / base_rows if base_rows else 0.0,
                      "collision": bool(collision), "ids": sample_ids(analysis.batch.ids, members)}
            reports.append(report)
            scores[members] = share
            if collision:
                flags[members] = True
                group_col[members] = number
                reasons[members] = (f"clean-label collision: one of {len(members)} tightly packed rows labelled "
                                    f"{report['label']!r} whose surroundings are {looks_like!r} "
                                    f"({share:.0%} of the group)")
        found = [r for r in reports if r["collision"]]
        lines = [f"Clean-label collision: {r['rows']} rows labelled {r['label']!r} packed together where the "
                 f"data says {r['looks_like']!r} ({r['unlike_share']:.0%}), e.g. ids "
                 f"{', '.join(map(str, r['ids'][:5]))}" for r in found]
        summary = {"radius": radius, "candidate_groups": len(groups), "groups": found,
                   "rejected_groups": len(groups) - len(found),
                   "mode": "reference" if analysis.reference is not None else "self",
                   "console_lines": lines}
        return SignalResult(self.name, scores, flags, reasons, summary, {"collision_group": group_col})

    def _surroundings(self, analysis, groups, packed, y):
        """Per batch row: the class its surroundings favour when that is not its
        label (-1 otherwise, or when not in a group); per class: baseline
        (unlike count, rows)."""
        n_classes = analysis.n_classes
        unlike = np.full(len(y), -1, dtype=np.int64)
        members = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        ref = analysis.reference
        if ref is not None:
            nb = analysis.neighbors("reference", self.params["k"])
            majority = _majority(ref.y[nb.indices[members]], n_classes)
            other = majority != y[members]
            unlike[members[other]] = majority[other]
            ref_nb = analysis.reference_neighbors(self.params["k"])
            ref_major = _majority(ref.y[ref_nb.indices], n_classes)
            wrong = np.bincount(ref.y[ref_major != ref.y], minlength=n_classes)
            rows = np.bincount(ref.y, minlength=n_classes)
            return unlike, {c: (int(wrong[c]), int(rows[c])) for c in range(n_classes)}
        if len(members) == 0:
            return unlike, {c: (0, 0) for c in range(n_classes)}
        keep = ~packed
        result = Reclassifier(self.params["max_train_rows"], self.params["random_state"]).run(
            analysis.batch.X[keep], y[keep], analysis.batch.X[members], n_classes)
        other = result.predicted != y[members]
        unlike[members[other]] = result.predicted[other]
        baseline = {c: (int(round(result.baseline_error[c] * result.baseline_rows[c])),
                        int(result.baseline_rows[c])) for c in range(n_classes)}
        return unlike, baseline


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
