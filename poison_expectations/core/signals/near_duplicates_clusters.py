"""The near-duplicate signal's per-cluster findings: verdicts, scores, reasons
and summaries for the clusters of one table (near_duplicates.py has the method)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from poison_expectations.core.signals.base import plain
from poison_expectations.core.signals.near_duplicates_graph import Groups, ReferenceMatches
from poison_expectations.core.signals.near_duplicates_model import SizeModel

CONSOLE_CLUSTERS = 5
EXAMPLE_IDS = 5


# -- per-cluster findings ------------------------------------------------------------

@dataclass
class ClusterReport:
    """Clusters of one table: compact ids (0 = largest), stats and verdicts."""

    row_cluster: np.ndarray  # compact cluster id per row, -1 when in no cluster
    sizes: np.ndarray  # table rows per compact cluster
    n_labels: np.ndarray
    n_sources: np.ndarray
    reference_rows: np.ndarray  # members with a reference near-duplicate
    conflicting: np.ndarray
    improbable: np.ndarray
    over_limit: np.ndarray
    log_expected: np.ndarray  # log E[#clusters of size >= s] per cluster
    exact_duplicate_rows: int
    row_flags: np.ndarray
    row_scores: np.ndarray
    alpha: float
    limit: int | None
    bottleneck: np.ndarray  # per cluster: the radius it holds together at
    judged_tight: np.ndarray  # per cluster: its expected count comes from the tightness test

    def as_state(self) -> dict:
        """The report as plain data (arrays and numbers), for a fitted state."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict) -> "ClusterReport":
        return cls(**state)

    @property
    def n_clusters(self) -> int:
        return int(len(self.sizes))

    @property
    def suspicious(self) -> np.ndarray:
        return self.conflicting | self.improbable | self.over_limit

    @property
    def n_suspicious(self) -> int:
        return int(self.suspicious.sum())

    @property
    def n_conflicting(self) -> int:
        return int(self.conflicting.sum())

    @property
    def suspicious_rows(self) -> int:
        return int(self.sizes[self.suspicious].sum())

    @property
    def rows_in_clusters(self) -> int:
        return int(self.sizes.sum())

    @property
    def largest(self) -> int:
        return int(self.sizes.max()) if len(self.sizes) else 1

    def expected_conflicts(self, disagreement: float | None) -> float:
        """Conflicting clusters expected by chance: a cluster of s rows (a reference
        match counts as one more) conflicts with probability 1 - (1 - p)^(s - 1), p the
        fitting table's nearest-neighbour label disagreement; improbable clusters excluded."""
        if disagreement is None or not self.n_clusters:
            return 0.0
        rows = self.sizes + (self.reference_rows > 0)
        chance = 1.0 - (1.0 - disagreement) ** np.maximum(rows - 1, 0)
        return float(chance[~self.improbable & ~self.over_limit].sum())

    def members(self) -> list[np.ndarray]:
        """Row indices of each compact cluster (one sort, no per-cluster scan)."""
        rows = np.flatnonzero(self.row_cluster >= 0)
        rows = rows[np.argsort(self.row_cluster[rows], kind="stable")]
        return np.split(rows, np.cumsum(self.sizes)[:-1]) if len(self.sizes) else []

    def reasons(self, table, classes, matches: ReferenceMatches | None, ref) -> np.ndarray:
        n = len(self.row_cluster)
        reasons = np.full(n, "", dtype=object)
        texts = np.full(self.n_clusters, "", dtype=object)
        members = self.members()
        for c in np.flatnonzero(self.suspicious):
            texts[c] = self._cluster_reason(c, table, classes, members[c])
        in_cluster = self.row_flags & (self.row_cluster >= 0)
        reasons[in_cluster] = texts[self.row_cluster[in_cluster]]
        if matches is not None:
            for row in np.flatnonzero(matches.conflict):
                r = matches.conflict_row[row]
                text = (f"near-copy of reference row {plain(ref.ids[r])!r} labelled "
                        f"{plain(classes[ref.y[r]])!r}, own label {plain(classes[table.y[row]])!r}")
                reasons[row] = f"{reasons[row]}; {text}" if reasons[row] else text
        return reasons

    def _cluster_reason(self, c, table, classes, members) -> str:
        size = int(self.sizes[c])
        why = []
        if self.conflicting[c]:
            labels = label_counts(table, classes, members) if members is not None else {}
            why.append(f"conflicting labels {labels}" if labels and len(labels) > 1
                       else "labels conflicting with reference near-copies")
        if self.improbable[c]:
            what = (f"improbably tight (within distance {self.bottleneck[c]:.3g})" if self.judged_tight[c]
                    else "improbable size")
            why.append(f"{what} (expected {np.exp(self.log_expected[c]):.2g} such clusters "
                       f"without copies, alpha {self.alpha:g})")
        if self.over_limit[c]:
            why.append(f"over the limit of {self.limit} rows")
        return f"near-duplicate cluster {c} of {size} rows: " + ", ".join(why)

    def cluster_summaries(self, table, classes, count: int, matches: ReferenceMatches | None = None,
                          ref=None) -> list[dict]:
        """The `count` largest suspicious clusters, then the largest others."""
        order = np.lexsort((np.arange(self.n_clusters), -self.sizes, ~self.suspicious))[:count]
        all_members = self.members()
        out = []
        for c in order:
            members = all_members[c]
            entry = {
                "cluster_id": int(c),
                "size": int(self.sizes[c]),
                "suspicious": bool(self.suspicious[c]),
                "conflicting_labels": bool(self.conflicting[c]),
                "improbable_size": bool(self.improbable[c]),
                "improbably_tight": bool(self.improbable[c] and self.judged_tight[c]),
                "bottleneck_distance": float(self.bottleneck[c]),
                "over_limit": bool(self.over_limit[c]),
                "expected_clusters_this_large": float(np.exp(self.log_expected[c])),
                "labels": label_counts(table, classes, members),
                "sources": source_counts(table, members),
                "distinct_sources": int(self.n_sources[c]),
                "rows_matching_reference": int(self.reference_rows[c]),
                "reference_labels": _reference_labels(matches, ref, classes, members),
                "example_ids": [plain(v) for v in table.ids[members[:EXAMPLE_IDS]]],
            }
            out.append(entry)
        return out


def describe(groups: Groups, table, matches: ReferenceMatches | None, model: SizeModel,
             limit: int | None, classes) -> ClusterReport:
    n = table.n
    in_cluster = groups.sizes[groups.labels] >= 2
    if matches is not None:
        in_cluster |= matches.count > 0  # a batch row and the reference rows it copies
    comps = np.unique(groups.labels[in_cluster])
    comp_sizes = groups.sizes[comps]
    order = np.lexsort((comps, -comp_sizes))
    compact = np.full(len(groups.sizes), -1, dtype=np.int64)
    compact[comps[order]] = np.arange(len(comps))
    row_cluster = np.where(in_cluster, compact[groups.labels], -1)
    n_c = len(comps)
    members = np.flatnonzero(row_cluster >= 0)
    cid = row_cluster[members]
    sizes = np.bincount(cid, minlength=n_c)
    n_labels = _distinct_per_cluster(cid, table.y[members] if table.y is not None else None, n_c)
    n_sources = _distinct_per_cluster(cid, pd.factorize(table.sources[members])[0]
                                      if table.sources is not None else None, n_c)
    conflicting = n_labels >= 2
    reference_rows = np.zeros(n_c, dtype=np.int64)
    if matches is not None:
        reference_rows = np.bincount(cid, weights=matches.count[members] > 0, minlength=n_c).astype(np.int64)
        conflicting |= np.bincount(cid, weights=matches.conflict[members], minlength=n_c) > 0
    max_size = int(sizes.max()) if n_c else 1
    log_e_by_size = model.log_expected(max_size, n)
    log_e = log_e_by_size[sizes] if n_c else np.zeros(0)
    bottleneck = np.zeros(n_c)
    bottleneck[compact[comps]] = groups.bottleneck[comps]
    log_e_tight = model.log_expected_tight(sizes, bottleneck, n)
    tight = (log_e_tight < log_e) & (log_e >= np.log(model.alpha))  # tightness decided it
    log_e = np.minimum(log_e, log_e_tight)
    log_alpha = np.log(model.alpha)
    improbable = (log_e < log_alpha) & (sizes >= 2)
    over_limit = sizes > limit if limit is not None else np.zeros(n_c, dtype=bool)
    suspicious = conflicting | improbable | over_limit
    flags = np.zeros(n, dtype=bool)
    flags[members] = suspicious[cid]
    scores = np.zeros(n)
    size_score = np.clip(0.5 * log_e / log_alpha, 0.0, 1.0) * (sizes >= 2)
    if limit is not None:
        size_score = np.where(over_limit, np.maximum(size_score, 0.5 + 0.5 * np.minimum(1.0, (sizes - limit) / limit)),
                              size_score)
    scores[members] = size_score[cid]
    if table.y is not None:
        own = _own_label_share(cid, table.y[members], n_c)
        conflict_score = np.where(conflicting[cid], 0.5 + 0.5 * (1.0 - own), 0.0)
        if matches is not None:
            conflict_score = np.where(matches.conflict[members], np.maximum(conflict_score, 0.75), conflict_score)
        scores[members] = np.maximum(scores[members], conflict_score)
    if matches is not None:
        flags |= matches.conflict
    return ClusterReport(row_cluster, sizes, n_labels, n_sources, reference_rows, conflicting, improbable,
                         over_limit, log_e, int(groups.exact_shared.sum()), flags, scores, model.alpha, limit,
                         bottleneck, tight)


def _distinct_per_cluster(cid: np.ndarray, values: np.ndarray | None, n_c: int) -> np.ndarray:
    if values is None or n_c == 0:
        return np.ones(n_c, dtype=np.int64) if values is None else np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.stack([cid, values.astype(np.int64)]), axis=1)
    return np.bincount(pairs[0], minlength=n_c)


def _own_label_share(cid: np.ndarray, y: np.ndarray, n_c: int) -> np.ndarray:
    """Per member: the share of its cluster carrying its own label."""
    pair = pd.Series(np.ones(len(cid))).groupby([cid, y]).transform("size").to_numpy()
    return pair / np.bincount(cid, minlength=n_c)[cid]


def _reference_labels(matches: ReferenceMatches | None, ref, classes, members) -> dict:
    """Labels of the reference rows the members copy (a conflicting one where there is one)."""
    if matches is None or ref is None or ref.y is None:
        return {}
    rows = np.where(matches.conflict_row[members] >= 0, matches.conflict_row[members], matches.first_row[members])
    rows = rows[rows >= 0]
    if not len(rows):
        return {}
    codes, counts = np.unique(ref.y[rows], return_counts=True)
    return {plain(classes[c]): int(k) for c, k in zip(codes, counts, strict=True)}


def label_counts(table, classes, members) -> dict:
    if table.y is None or members is None or len(members) == 0:
        return {}
    codes, counts = np.unique(table.y[members], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {plain(classes[codes[i]]): int(counts[i]) for i in order}


def source_counts(table, members, top: int = 5) -> dict:
    if table.sources is None or len(members) == 0:
        return {}
    values, counts = np.unique(table.sources[members], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return {str(values[i]): int(counts[i]) for i in order}


def console_lines(summaries: list[dict], n_rows: int) -> list[str]:
    suspicious = [s for s in summaries if s["suspicious"]][:CONSOLE_CLUSTERS]
    if not suspicious:
        return []
    lines = ["Largest suspicious near-duplicate clusters (id: rows, labels, sources, why, example ids):"]
    for s in suspicious:
        why = [w for w, on in (("conflicting labels", s["conflicting_labels"]),
                               ("improbable size", s["improbable_size"]),
                               ("over size limit", s["over_limit"])) if on]
        share = 100.0 * s["size"] / n_rows
        sources = f", sources {s['sources']}" if s["sources"] else ""
        ref = (f", {s['rows_matching_reference']} of them near-copy reference rows labelled {s['reference_labels']}"
               if s["rows_matching_reference"] else "")
        ids = ", ".join(map(str, s["example_ids"]))
        lines.append(f"  cluster {s['cluster_id']}: {s['size']} rows ({share:.3g}%), labels {s['labels']}"
                     f"{sources}{ref}; {' + '.join(why)}; e.g. {ids}")
    return lines
