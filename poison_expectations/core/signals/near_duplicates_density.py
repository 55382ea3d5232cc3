"""Near duplicates as a density comparison: is the batch denser than the reference?

Null hypothesis H0: batch and reference rows are exchangeable (iid from one
distribution). Pool the n_b batch and n_r reference rows (N = n_b + n_r) and
join two pooled rows when they are exact copies (same precision-normalised
hash) or within ONE radius r. Under H0 the batch/reference labels are a
uniformly random permutation of the pooled rows given the pooled sample, so
any statistic of (graph, labels) has a null law obtained by permuting the
labels over the fixed graph: exact, whatever the data's distribution and
whatever the two sizes.

* r is a symmetric function of the pooled sample: the `radius_quantile` of the
  POOLED rows' 1st-NN distances (above the robust lower fence of
  near_duplicates_model.default_radius), or the configured radius. Sizes enter
  only through the permutation, never through two radii of two tables.
* Batch test: S = close pairs with both ends in the batch; p = (1 + #{S_sim >=
  S}) / (n_sims + 1) by Monte Carlo over label permutations (exact for any
  n_sims). Permutations touch only rows that have a close partner.
* Row p-values: batch row j with a_j batch and b_j reference partners (t_j =
  a_j + b_j): given t_j, a_j ~ Hypergeometric(N - 1, n_b - 1, t_j) under H0;
  p_j = P(X > a_j) + U P(X = a_j): exactly Uniform(0, 1) marginally (rows
  without partners get U). Rows sharing a dense spot get dependent p-values.
* Exact copies of continuous values: a model-based test reported beside the
  permutation test, not in `p_value` (near_duplicates_copies has why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from poison_expectations.core.signals.near_duplicates_copies import copy_test
from poison_expectations.core.signals.near_duplicates_model import default_radius

N_SIMS = 9999  # Monte Carlo p-values resolve down to 1e-4
MIN_SIMS = 999
SIM_BUDGET = 5e7  # permuted label entries per test (a few seconds); beyond: Cantelli (see permutation_test)
BOUND_ALPHAS = (0.001, 0.01, 0.05, 0.1)  # levels of the reported removal lower bounds
DEEP_K = 128  # neighbours searched again for a row whose k-NN list is full within the radius
DEEP_MAX_ROWS = 200_000  # beyond: keep the short lists (counts truncated at k: valid, less power)


@dataclass
class PairGraph:
    """Close pairs of the pooled rows (0..n_b-1 batch, then the reference)."""

    n_batch: int
    n_ref: int
    near_u: np.ndarray  # pooled row of each non-exact close pair (u < v)
    near_v: np.ndarray
    group: np.ndarray  # pooled row -> exact-copy group id, -1 when its hash is unique
    group_batch: np.ndarray  # batch rows per group
    group_ref: np.ndarray  # reference rows per group
    saturated: int  # rows whose k-NN list ended within r: close partners may be missing

    @property
    def n(self) -> int:
        return self.n_batch + self.n_ref


def pooled_first_distances(self_nb, ref_nb, refself_nb, n_b: int, n_r: int) -> np.ndarray:
    """Every pooled row's distance to its nearest other pooled row. A reference
    row's nearest batch row is read from the batch rows' reference lists (exact
    for small distances unless that batch row's list is full of closer rows)."""
    d_b = np.minimum(_first(self_nb), _first(ref_nb))
    d_r = _first(refself_nb).astype(np.float64)
    ok = ref_nb.indices >= 0
    np.minimum.at(d_r, ref_nb.indices[ok], ref_nb.distances[ok].astype(np.float64))
    return np.concatenate([d_b.astype(np.float64), d_r])


def _first(nb) -> np.ndarray:
    return np.where(nb.indices[:, 0] >= 0, nb.distances[:, 0], np.inf)


def pooled_radius(d1: np.ndarray, quantile: float, configured: float | None) -> tuple[float, dict]:
    if configured is not None:
        return float(configured), {"method": "configured"}
    return default_radius(d1[np.isfinite(d1)], quantile)


def pair_graph(self_nb, ref_nb, refself_nb, keys_b, keys_r, radius: float, deepen=None) -> PairGraph:
    """Exact-copy groups of the pooled hashes plus the non-exact pairs within r
    from the three k-NN graphs (batch-batch, batch-reference, reference-reference).
    A row whose k-th neighbour is still within r may have more partners: with
    `deepen(kind, rows, k)` (kind "self", "reference" or "reference-self", as
    Analysis.search_rows) those rows are searched again with DEEP_K neighbours,
    so a flood's rows count their copies instead of k of them."""
    n_b, n_r = len(keys_b), len(keys_r)
    codes, _ = pd.factorize(np.concatenate([keys_b, keys_r]))
    sizes = np.bincount(codes)
    shared = sizes[codes] >= 2
    group = np.full(n_b + n_r, -1, dtype=np.int64)
    group[shared], _ = pd.factorize(codes[shared])
    n_g = int(group.max()) + 1
    group_batch = np.bincount(group[:n_b][group[:n_b] >= 0], minlength=n_g)
    group_ref = np.bincount(group[n_b:][group[n_b:] >= 0], minlength=n_g)
    pairs, saturated = [], 0
    for kind, nb, offset_q, offset_i, n_indexed in (("self", self_nb, 0, 0, n_b - 1),
                                                    ("reference", ref_nb, 0, n_b, n_r),
                                                    ("reference-self", refself_nb, n_b, n_b, n_r - 1)):
        src, dst, full = _close(nb, radius, n_indexed)
        if deepen is not None and 0 < len(full) <= DEEP_MAX_ROWS:
            deep = deepen(kind, full, min(DEEP_K, n_indexed))
            more, dst_more, still = _close(deep, radius, n_indexed)
            src, dst = np.concatenate([src, full[more]]), np.concatenate([dst, dst_more])
            full = full[still]
        saturated += len(full)
        pairs.append((src + offset_q, dst + offset_i))
    u = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    v = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    keep = (lo != hi) & (codes[lo] != codes[hi])  # exact copies are counted by their groups
    unique = np.unique(lo[keep] * (n_b + n_r) + hi[keep])
    return PairGraph(n_b, n_r, unique // (n_b + n_r), unique % (n_b + n_r), group, group_batch, group_ref,
                     saturated)


def _close(nb, radius: float, n_indexed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, indexed row) of the pairs within r, and the query rows whose
    list is full within r while more indexed rows exist (partners may be missing)."""
    near = (nb.distances <= radius) & (nb.indices >= 0)
    src, pos = np.nonzero(near)
    full = np.flatnonzero(near[:, -1]) if nb.k < n_indexed else np.zeros(0, dtype=np.int64)
    return src, nb.indices[src, pos], full


def partner_counts(g: PairGraph) -> tuple[np.ndarray, np.ndarray]:
    """Per batch row: close partners in the batch (a) and in the reference (b)."""
    n, n_b = g.n, g.n_batch
    u_b, v_b = g.near_u < n_b, g.near_v < n_b
    a = np.bincount(g.near_u[v_b], minlength=n) + np.bincount(g.near_v[u_b], minlength=n)
    b = np.bincount(g.near_u[~v_b], minlength=n) + np.bincount(g.near_v[~u_b], minlength=n)
    a, b = a[:n_b], b[:n_b]
    grp = g.group[:n_b]
    ing = grp >= 0
    a[ing] += g.group_batch[grp[ing]] - 1
    b[ing] += g.group_ref[grp[ing]]
    return a, b


def pair_totals(g: PairGraph) -> dict:
    """Close pairs batch-batch, batch-reference and reference-reference (exact copies included)."""
    n_b = g.n_batch
    u_b, v_b = g.near_u < n_b, g.near_v < n_b
    gb, gr = g.group_batch.astype(np.float64), g.group_ref.astype(np.float64)
    return {"batch_batch": int((u_b & v_b).sum() + (gb * (gb - 1) / 2).sum()),
            "batch_reference": int((u_b != v_b).sum() + (gb * gr).sum()),
            "reference_reference": int((~u_b & ~v_b).sum() + (gr * (gr - 1) / 2).sum()),
            "exact_batch_batch": int((gb * (gb - 1) / 2).sum()),
            "exact_batch_reference": int((gb * gr).sum()),
            "exact_reference_reference": int((gr * (gr - 1) / 2).sum())}


def row_pvalues(a: np.ndarray, b: np.ndarray, n_b: int, n_r: int, rng: np.random.Generator) -> np.ndarray:
    """Randomised hypergeometric p-values (module docstring): uniform under H0."""
    return hypergeometric_pvalues(a, b, n_b, n_r, rng.random(len(a)))


def hypergeometric_pvalues(a: np.ndarray, b: np.ndarray, n_b: int, n_r: int, u: np.ndarray) -> np.ndarray:
    """P(X > a) + u P(X = a), X the batch rows among a row's a + b partners
    drawn from the n_b - 1 other batch and n_r reference rows: with u
    uniform, exactly uniform under H0; with u = 1, P(X >= a) (conservative)."""
    u = np.asarray(u, dtype=float)
    p = u.copy()
    has = (a + b) > 0
    if has.any():
        # few distinct (a, t) pairs: evaluate the tails once per pair (scipy's pmf is slow at large N)
        pairs, inverse = np.unique(np.stack([a[has], a[has] + b[has]]), axis=1, return_inverse=True)
        dist = stats.hypergeom(n_b + n_r - 1, n_b - 1, pairs[1])
        above, at = dist.sf(pairs[0]), np.exp(dist.logpmf(pairs[0]))
        inverse = inverse.ravel()
        p[has] = above[inverse] + u[has] * at[inverse]
    return np.clip(p, 0.0, 1.0)


# -- the batch test -------------------------------------------------------------

def _falling(x: int, k: int) -> float:
    return float(np.prod([x - i for i in range(k)], dtype=np.float64))


def _edges_and_sharing(g: PairGraph) -> tuple[float, float]:
    """Close pairs, and ordered pairs of close pairs with one common row."""
    sizes = (g.group_batch + g.group_ref).astype(np.float64)
    edges = len(g.near_u) + float((sizes * (sizes - 1) / 2).sum())
    degree = (np.bincount(g.near_u, minlength=g.n) + np.bincount(g.near_v, minlength=g.n)).astype(np.float64)
    ing = g.group >= 0
    degree[ing] += sizes[g.group[ing]] - 1
    return edges, float((degree * (degree - 1)).sum())


def null_moments(g: PairGraph) -> tuple[float, float]:
    """Exact mean and variance of S (batch-batch pairs) under label permutation:
    an edge is batch-batch with p2 = (n_b)_2 / (N)_2; two edges sharing a row with
    p3, disjoint ones with p4 ((x)_k the falling factorial)."""
    n, n_b = g.n, g.n_batch
    edges, sharing = _edges_and_sharing(g)
    p2, p3, p4 = (_falling(n_b, j) / _falling(n, j) if n >= j else 0.0 for j in (2, 3, 4))
    variance = edges * p2 * (1 - p2) + sharing * (p3 - p2 ** 2) + (edges * (edges - 1) - sharing) * (p4 - p2 ** 2)
    return edges * p2, max(variance, 0.0)


def removal_lower_bound(g: PairGraph, observed: float, batch_degree: np.ndarray, alpha: float) -> int:
    """Fewest batch rows whose removal could make a level-alpha Cantelli test of the
    rest accept, bounded from below: removing f rows removes at most the f largest
    batch-batch degrees from S, and the remaining graph's null mean and variance are
    at most E p2_f and E p2_f (1 - p2_f) + sharing max(0, p3_f - p2_f^2) (the
    disjoint-pairs term is negative). If F* (the contaminated rows) is not a set
    whose removal is so certified, the test on the clean rows rejects, which has
    chance <= alpha: P(bound > |F*|) <= alpha, given a radius that does not
    depend on F* (configured; the fenced pooled quantile only approximately)."""
    f = np.arange(g.n_batch + 1, dtype=np.float64)
    nb_f, n_f = g.n_batch - f, g.n - f
    with np.errstate(divide="ignore", invalid="ignore"):
        p2 = np.where(n_f >= 2, nb_f * (nb_f - 1) / (n_f * (n_f - 1)), 0.0)
        p3 = np.where(n_f >= 3, p2 * (nb_f - 2) / (n_f - 2), 0.0)
    edges, sharing = _edges_and_sharing(g)
    variance = edges * p2 * (1 - p2) + sharing * np.maximum(0.0, p3 - p2 ** 2)
    left = observed - np.concatenate([[0.0], np.cumsum(np.sort(batch_degree)[::-1])])[:len(f)] - edges * p2
    certified = (left > 0) & (left ** 2 >= variance * (1 - alpha) / alpha)
    return g.n_batch if certified.all() else int(np.argmin(certified))


def _involved(g: PairGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows with a close partner (local numbering), the near pairs in it, the
    group members ordered by group, and where each group starts."""
    involved = g.group >= 0
    involved[g.near_u] = True
    involved[g.near_v] = True
    rows = np.flatnonzero(involved)
    local = np.full(g.n, -1, dtype=np.int64)
    local[rows] = np.arange(len(rows))
    in_group = np.flatnonzero(g.group >= 0)
    in_group = in_group[np.argsort(g.group[in_group], kind="stable")]
    sizes = g.group_batch + g.group_ref
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return rows, np.stack([local[g.near_u], local[g.near_v]]), local[in_group], starts


def _simulate(g: PairGraph, sims: int, rng: np.random.Generator) -> np.ndarray:
    """S under `sims` random label permutations, drawn on the involved rows only:
    their batch count is Hypergeometric(N, n_b, rows), then a uniform subset."""
    rows, near, members, starts = _involved(g)
    m = len(rows)
    chunk = max(1, int(4e6 // max(m, 1)))
    out = []
    for at in range(0, sims, chunk):
        c = min(chunk, sims - at)
        keys = rng.random((c, m))
        count = rng.hypergeometric(g.n_batch, g.n_ref, m, size=c)
        kth = np.sort(keys, axis=1)[np.arange(c), np.maximum(count - 1, 0)]
        is_b = (keys <= kth[:, None]) & (count[:, None] > 0)
        s = (is_b[:, near[0]] & is_b[:, near[1]]).sum(axis=1).astype(np.float64)
        if len(members):
            gb = np.add.reduceat(is_b[:, members].astype(np.int64), starts, axis=1).astype(np.float64)
            s += (gb * (gb - 1) / 2).sum(axis=1)
        out.append(s)
    return np.concatenate(out) if out else np.zeros(0)


def permutation_test(g: PairGraph, observed: float, rng: np.random.Generator, n_sims: int = N_SIMS) -> dict:
    """p-value of S = batch-batch close pairs under label permutation. Monte Carlo
    with as many draws (up to `n_sims`) as SIM_BUDGET allows for the involved rows;
    below MIN_SIMS draws, Cantelli's inequality on the exact mean and variance
    (also valid, more conservative). The choice depends on the graph only, never
    on the labels, so either way P(p <= a) <= a under H0."""
    mean, variance = null_moments(g)
    rows = int((g.group >= 0).sum()) + 2 * len(g.near_u)
    excess = observed - mean
    cantelli = 1.0 if excess <= 0 else float(variance / (variance + excess ** 2))
    out = {"statistic": float(observed), "expected_under_null": mean, "sd_under_null": float(np.sqrt(variance)),
           "cantelli_p_value": cantelli}
    if rows == 0:
        return {**out, "method": "permutation", "p_value": 1.0, "n_sims": 0}
    n_sims = int(min(n_sims, SIM_BUDGET // rows))
    if n_sims >= MIN_SIMS:
        sims = _simulate(g, n_sims, rng)
        p = (1.0 + float((sims >= observed).sum())) / (n_sims + 1.0)
        return {**out, "method": "permutation", "p_value": p, "n_sims": n_sims}
    return {**out, "method": "permutation_cantelli", "p_value": cantelli, "n_sims": 0}


# -- entry point ------------------------------------------------------------------

def density_test(self_nb, ref_nb, refself_nb, keys_b, keys_r, *, quantile: float, configured: float | None,
                 rho0: float, dimension: float | None, seed, deepen=None) -> tuple[np.ndarray, dict]:
    """Row p-values and the batch test of "batch and reference are exchangeable"."""
    n_b, n_r = len(keys_b), len(keys_r)
    rng = np.random.default_rng(seed)
    d1 = pooled_first_distances(self_nb, ref_nb, refself_nb, n_b, n_r)
    radius, radius_info = pooled_radius(d1, quantile, configured)
    g = pair_graph(self_nb, ref_nb, refself_nb, keys_b, keys_r, radius, deepen)
    a, b = partner_counts(g)
    pvalues = row_pvalues(a, b, n_b, n_r, rng)
    totals = pair_totals(g)
    perm = permutation_test(g, totals["batch_batch"], rng)
    copy = copy_test(len(g.near_u), n_b, n_r, g.group_batch, g.group_ref, totals, radius, radius_info, rho0,
                     dimension)
    assuming = min(1.0, 2.0 * min(perm["p_value"], copy["p_value"])) if copy["active"] else perm["p_value"]
    bounds = {str(level): removal_lower_bound(g, perm["statistic"], a, level) for level in BOUND_ALPHAS}
    test = {"method": perm["method"], "p_value": perm["p_value"], "statistic": perm["statistic"],
            # the gate's bound: closed testing (Simes) over the row p-values, at the gate's level
            "bound_from_row_pvalues": True,
            "removal_bounds": bounds,
            "removal_bound_note": "rows to remove before a Cantelli test of the rest could accept "
                                  "(removal_lower_bound): distribution-free, weaker",
            "radius": float(radius), "radius_rule": radius_info, "batch_rows": n_b, "reference_rows": n_r,
            "close_pairs": totals, "permutation": perm, "copies": copy, "saturated_rows": g.saturated,
            "rows_with_batch_partners": int((a > 0).sum()), "p_value_assuming_continuous": float(assuming)}
    return pvalues, test
