"""KNN-Shapley data values (Jia et al. 2019), truncated to the shared graph.

For one validation point t with training rows sorted by distance,
alpha_1 nearest, and a_i = 1[y_{alpha_i} == y_t], the exact recursion is
    s_N = a_N / N,
    s_i = s_{i+1} + (a_i - a_{i+1}) c_i,   c_i = min(K, i) / (K i).
Unrolled, s_rho = a_rho c_rho - sum_{i > rho} a_i (c_{i-1} - c_i) + a_N / N.
A row's value is the sum of s over validation points (units: validation
points classified correctly by the K-NN classifier); negative values mark
rows that make their neighbours' labels harder to predict.

Truncation: only the M nearest training rows of each validation point are
known (M = the shared graph's k). Rows beyond position M get no value from
that point, and the tail is replaced by its expectation when the labels
beyond M follow the class prior p = P(y = y_t):
    E[s_M | a_M] = (a_M - p) c_M   (the a_N / N term is dropped),
so every in-list value is s_rho = a_rho c_rho - sum_{rho < i <= M} a_i
(c_{i-1} - c_i) - p c_M. Jia et al. (2019, theorem 2) bound the error of
zeroing the values beyond M by 1/M per validation point; the expectation
only shifts the in-list values by a common, label-dependent constant.

Self-check: every batch row is a validation point for the other rows (its
own entry is excluded from its neighbour list), so no row validates itself.

Against a reference: the validation points are reference rows (trusted
labels). A batch row j is valued as if added to the reference: for each of
its k nearest reference rows t (the shared batch-to-reference graph), its
position rho among t's M nearest reference rows (the shared reference
graph) follows from the distances, t's list is shifted by one behind it and
truncated to M, and s_rho is taken from the formula above. A reference
row's own value is computed the same way from the reference graph (its
position in t's list when present), so a clean batch row and a reference
row are exchangeable. Validation points that would have j in their top M
but are not among j's k nearest reference rows are missed (the reverse
k-NN truncation).
"""

from __future__ import annotations

import numpy as np


def coefficients(M: int, K: int) -> np.ndarray:
    """c_i = min(K, i) / (K i) for positions i = 1..M."""
    i = np.arange(1, M + 1, dtype=np.float64)
    return np.minimum(K, i) / (K * i)


def _tail_weights(agree: np.ndarray, c: np.ndarray, shifted: bool = False) -> np.ndarray:
    """Suffix sums of the list entries' penalty weights (0-based positions).

    In place (shifted=False), entry i carries c_{i-1} - c_i (0 for i = 0).
    Shifted one place back behind an inserted row, entry m carries
    c_m - c_{m+1}, and the last entry falls off the truncated list.
    Column M of the result is 0 (nothing behind the end of the list).
    """
    w = np.zeros(len(c))
    if shifted:
        w[:-1] = c[:-1] - c[1:]
    else:
        w[1:] = c[:-1] - c[1:]
    weighted = agree * w[None, :]
    tail = np.cumsum(weighted[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([tail, np.zeros((tail.shape[0], 1))], axis=1)


def self_values(indices: np.ndarray, y: np.ndarray, K: int, prior: np.ndarray) -> np.ndarray:
    """Values of the rows of a table that validates itself.

    indices[t] are the M nearest other rows of validation row t, nearest first.
    """
    n, M = indices.shape
    K = min(K, M)
    c = coefficients(M, K)
    agree = (y[indices] == y[:, None]).astype(np.float64)
    tail = _tail_weights(agree, c)
    s = agree * c[None, :] - tail[:, 1:] - (prior[y] * c[-1])[:, None]
    return np.bincount(indices.ravel(), weights=s.ravel(), minlength=n)


def agreement(table_indices: np.ndarray, table_y: np.ndarray) -> np.ndarray:
    """Whether each entry of a table row's neighbour list shares the row's label."""
    return table_y[table_indices] == table_y[:, None]


def insertion_values(query_indices: np.ndarray, query_distances: np.ndarray, query_y: np.ndarray,
                     table_indices: np.ndarray, table_distances: np.ndarray, table_y: np.ndarray,
                     K: int, prior: np.ndarray, *, query_is_table: bool = False) -> np.ndarray:
    """Values of query rows as if each were added to a trusted table.

    query_indices/distances: each query row's k nearest table rows (the
    validation points it is valued against). table_indices/distances: each
    table row's M nearest other table rows. With `query_is_table` the query
    rows ARE the table rows (the reference's own baseline): a row's position
    in t's list is where it already stands, and absent means beyond M. On
    full lists this equals `self_values` (tested); on truncated ones it
    misses the rows that list a row but are not among its k nearest, as
    for a batch row, so the two stay exchangeable.
    """
    agree = agreement(table_indices, table_y)
    if not query_is_table:
        return new_row_values(query_indices, query_distances, query_y, agree, table_distances, table_y, K, prior)
    n, k = query_indices.shape
    M = table_indices.shape[1]
    c = coefficients(M, min(K, M))
    tail = _tail_weights(agree.astype(np.float64), c)  # in place: the row already is in t's list
    positions = np.arange(M)
    values = np.zeros(n)
    own = np.arange(n)
    for column in range(k):
        t = query_indices[:, column]
        present = table_indices[t] == own[:, None]
        rho = np.where(present, positions[None, :], M).min(axis=1)
        values += _position_values(rho, np.minimum(rho + 1, M), t, query_y, table_y, c, tail, prior)
    return values


def new_row_values(query_indices: np.ndarray, query_distances: np.ndarray, query_y: np.ndarray,
                   table_agree: np.ndarray, table_distances: np.ndarray, table_y: np.ndarray,
                   K: int, prior: np.ndarray) -> np.ndarray:
    """Values of new rows as if each were added to a trusted table, from what
    a fitted state keeps of the table's graph: per table row, whether each
    of its M neighbours shares its label (`agreement`) and their distances."""
    n, k = query_indices.shape
    M = table_agree.shape[1]
    c = coefficients(M, min(K, M))
    tail = _tail_weights(table_agree.astype(np.float64), c, shifted=True)  # entries behind move back one
    values = np.zeros(n)
    for column in range(k):
        t = query_indices[:, column]
        rho = (table_distances[t] < query_distances[:, column:column + 1]).sum(axis=1)
        values += _position_values(rho, rho, t, query_y, table_y, c, tail, prior)
    return values


def _position_values(rho, behind, t, query_y, table_y, c, tail, prior) -> np.ndarray:
    """s_rho of each query row at position rho of validation row t's list (0 beyond M)."""
    M = len(c)
    a_j = (query_y == table_y[t]).astype(np.float64)
    s = a_j * c[np.minimum(rho, M - 1)] - tail[t, behind] - prior[table_y[t]] * c[-1]
    return np.where(rho < M, s, 0.0)
