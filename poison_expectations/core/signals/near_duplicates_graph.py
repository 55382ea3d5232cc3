"""The near-duplicate signal's graph: precision-normalised row hashes, clusters
(connected components of near and exact edges) and batch rows' matches among
the reference rows (near_duplicates.py has the method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from poison_expectations.core.features import _as_numeric

MAX_DECIMALS = 6
TINY = 1e-300  # edge weight of exact copies in the sparse graph (an explicit 0 would be no edge)


# -- exact keys -------------------------------------------------------------------

def observed_decimals(frame: pd.DataFrame, encoder) -> dict[str, int]:
    """Decimals (0..6) each numeric feature column is recorded with; absent = unrounded."""
    out = {}
    for plan in encoder.plans:
        if plan.kind != "numeric" or plan.datetime:
            continue
        values, _ = _as_numeric(frame[plan.name], plan.name)
        if values is None:
            continue
        finite = values[np.isfinite(values)]
        for d in range(MAX_DECIMALS + 1):
            scaled = finite * 10.0 ** d
            if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
                out[plan.name] = d
                break
    return out


def row_keys(table, encoder, decimals: dict[str, int]) -> np.ndarray:
    """uint64 hash per row of the precision-normalised feature values."""
    parts = []
    at = 0
    X = table.X + np.float32(0.0)  # -0.0 -> 0.0
    for plan in encoder.plans:
        width = plan.width()
        block = X[:, at:at + width]
        d = decimals.get(plan.name)
        if plan.kind == "numeric" and d is not None:
            values, _ = _as_numeric(table.frame[plan.name], plan.name)
            assert values is not None  # a numeric plan's column reads as numbers
            scaled = values * 10.0 ** d
            ok = np.isfinite(scaled) & (np.abs(scaled) < 2.0 ** 53)
            codes = np.where(ok, np.round(np.where(ok, scaled, 0.0)), 0.0).astype(np.int64)
            # outside the exact range (or missing): fall back to the encoded value
            codes = np.where(ok, codes, block[:, 0].view(np.int32).astype(np.int64) - 2 ** 62)
            parts.append(codes)
            if width > 1:
                parts.append(block[:, 1:].view(np.int32).astype(np.int64).ravel())
        else:
            parts.extend(block.view(np.int32).astype(np.int64).T)
        at += width
    frame = pd.DataFrame({i: part for i, part in enumerate(parts)})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


# -- clusters ---------------------------------------------------------------------

@dataclass
class Groups:
    """Connected components over near-duplicate edges and exact-hash groups."""

    labels: np.ndarray  # component per row
    sizes: np.ndarray  # rows per component
    exact_shared: np.ndarray  # bool per row: another row has the same hash
    bottleneck: np.ndarray  # per component: longest edge of its minimum spanning tree (0: exact copies)

    @property
    def n_clusters(self) -> int:
        return int((self.sizes >= 2).sum())


def components(n: int, neighbors, radius: float, keys: np.ndarray) -> Groups:
    near = neighbors.distances <= radius
    near &= neighbors.indices >= 0
    src, pos = np.nonzero(near)
    dst = neighbors.indices[src, pos]
    codes, uniques = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(uniques))
    first = np.full(len(uniques), -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(n)[::-1]  # first row holding each hash
    shared = counts[codes] >= 2
    exact_src = np.flatnonzero(shared)
    src = np.concatenate([src, exact_src])
    dst = np.concatenate([dst, first[codes[exact_src]]])
    weight = np.concatenate([neighbors.distances[near], np.zeros(len(exact_src))])
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keep = lo != hi
    lo, hi, weight = lo[keep], hi[keep], weight[keep]
    order = np.lexsort((weight, hi, lo))  # per pair, the shortest edge first
    lo, hi, weight = lo[order], hi[order], weight[order]
    first_of_pair = np.ones(len(lo), dtype=bool)
    first_of_pair[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    lo, hi, weight = lo[first_of_pair], hi[first_of_pair], weight[first_of_pair]
    # csgraph drops explicit zeros, so exact copies get the smallest positive weight
    graph = sparse.coo_matrix((np.maximum(weight, TINY), (lo, hi)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    tree = minimum_spanning_tree(graph).tocoo()
    bottleneck = np.zeros(len(sizes))
    np.maximum.at(bottleneck, labels[tree.row], np.where(tree.data <= TINY, 0.0, tree.data))
    return Groups(labels, sizes, shared, bottleneck)


# -- batch against reference ----------------------------------------------------

@dataclass
class ReferenceMatches:
    """Per batch row: reference rows within r, and one with a different label."""

    count: np.ndarray  # reference near-duplicates found (capped at k for the kNN part)
    conflict: np.ndarray  # bool: a reference near-duplicate carries another label
    conflict_row: np.ndarray  # reference row index of that near-duplicate, -1 if none
    first_row: np.ndarray  # some matching reference row, -1 if none


def reference_matches(batch, ref, batch_keys, ref_keys, neighbors, radius) -> ReferenceMatches:
    n = batch.n
    near = (neighbors.distances <= radius) & (neighbors.indices >= 0)
    count = near.sum(axis=1)
    first_row = np.where(near.any(axis=1), neighbors.indices[np.arange(n), near.argmax(axis=1)], -1)
    conflict = np.zeros(n, dtype=bool)
    conflict_row = np.full(n, -1, dtype=np.int64)
    # exact matches: every reference row with the same hash, not only the k nearest
    ref_frame = pd.DataFrame({"key": ref_keys, "row": np.arange(ref.n)})
    if ref.y is not None:
        ref_frame["y"] = ref.y
    grouped = ref_frame.groupby("key", sort=False)
    exact = pd.DataFrame({"key": batch_keys}).merge(
        grouped["row"].agg(["size", "first"]).reset_index(), on="key", how="left")
    exact_count = exact["size"].fillna(0).to_numpy(dtype=np.int64)
    count = np.maximum(count, exact_count)
    first_row = np.where(first_row >= 0, first_row, exact["first"].fillna(-1).to_numpy(dtype=np.int64))
    if batch.y is not None and ref.y is not None:
        y = batch.y
        differs = near & (ref.y[neighbors.indices] != y[:, None])
        knn_conflict = differs.any(axis=1)
        conflict |= knn_conflict
        conflict_row = np.where(knn_conflict, neighbors.indices[np.arange(n), differs.argmax(axis=1)], -1)
        # per hash: the first row, and the first row whose label differs from it
        firsts = ref_frame.drop_duplicates("key")[["key", "row", "y"]]
        other = ref_frame.merge(firsts, on="key", suffixes=("", "_first"))
        other = other[other["y"] != other["y_first"]].drop_duplicates("key")[["key", "row", "y"]]
        table = firsts.merge(other, on="key", how="left", suffixes=("_a", "_b"))
        hit = pd.DataFrame({"key": batch_keys}).merge(table, on="key", how="left")
        row_a = hit["row_a"].fillna(-1).to_numpy(dtype=np.int64)
        y_a = hit["y_a"].fillna(-1).to_numpy(dtype=np.int64)
        row_b = hit["row_b"].fillna(-1).to_numpy(dtype=np.int64)
        exact_other = np.where((row_a >= 0) & (y_a != y), row_a, np.where((row_a >= 0) & (row_b >= 0), row_b, -1))
        conflict_row = np.where(conflict_row >= 0, conflict_row, exact_other)
        conflict |= exact_other >= 0
    return ReferenceMatches(count, conflict, conflict_row, first_row)
