"""The clean tables the attacks start from: :func:`make_tabular` draws a
realistic labelled table (ids, mixed numeric columns, categoricals, a skewed
``source`` column, integer labels).

The distribution's parameters come from one random stream (the distribution
seed) and the rows from another (the sample seed), so a trusted reference
and a training table can be two samples of the same distribution.  The
order of the draws within each stream is fixed: changing it changes every
table the tests and benchmarks see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from poison_expectations.testing.base import check_seed

_SOURCE_NAMES = (
    "vendor_a", "crowd_07", "internal", "vendor_b", "crowd_12", "partner_x",
    "vendor_c", "crowd_03", "web_scrape", "crowd_19", "partner_y", "vendor_d",
)
_CAT_LEVELS = (
    ("web", "mobile", "store", "phone"),
    ("north", "south", "east", "west", "central"),
    ("basic", "plus", "pro"),
    ("new", "returning", "lapsed", "vip"),
    ("A", "B", "C", "D", "E", "F"),
)
# Marginal shape of numeric column j is _NUMERIC_KINDS[j % len]:
#   measure: location-scale, 1-2 decimals (e.g. a temperature or a weight)
#   amount:  log-normal, positive, 2 decimals (a price)
#   count:   non-negative integer (visits, items)
#   score:   unrounded float (a computed score)
#   ratio:   in (0, 1), 3 decimals
_NUMERIC_KINDS = ("measure", "amount", "count", "score", "ratio", "measure", "count", "amount")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sample_rows(probs: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category per row; row i uses the distribution probs[rows[i]]."""
    cum = np.cumsum(probs, axis=1)[:, :-1]
    u = rng.random(len(rows))
    out = np.zeros(len(rows), dtype=np.int64)
    for j in range(cum.shape[1]):  # loop over categories, not rows
        out += u > cum[rows, j]
    return out


def _source_names(n_sources: int) -> list[str]:
    names = list(_SOURCE_NAMES[:n_sources])
    k = 20
    while len(names) < n_sources:
        names.append(f"crowd_{k:02d}")
        k += 1
    return names


@dataclass
class _Distribution:
    """The table's distribution: everything drawn from the distribution seed."""

    shares: np.ndarray  # share of rows per source (S)
    class_given_source: np.ndarray  # class mix per source (S x C)
    mu: np.ndarray  # class means in whitened latent space (C x d)
    class_scale: np.ndarray  # per-class latent scale (C)
    mix: np.ndarray  # linear map that correlates the latent columns (d x d)
    kinds: list[str]  # marginal shape per numeric column
    kind_params: list[tuple]  # that shape's parameters
    cat_specs: list[tuple[np.ndarray, np.ndarray]]  # per categorical column: levels, level mix per class


def make_tabular(
    n_rows: int,
    n_numeric: int = 8,
    n_categorical: int = 2,
    n_classes: int = 2,
    n_sources: int = 6,
    class_sep: float = 1.5,
    label_noise: float = 0.0,
    with_id: bool = True,
    random_state: int = 0,
    *,
    distribution_seed: int | None = None,
) -> pd.DataFrame:
    """Draw a realistic labelled table.

    Columns, in order: ``row_id`` (strings ``r000000``..., when ``with_id``),
    ``num_0..num_{n_numeric-1}``, ``cat_0..cat_{n_categorical-1}``,
    ``source``, ``label`` (int64 in ``0..n_classes-1``).

    Generative model:

    * ``source``: ``n_sources`` named contributors (``vendor_a``,
      ``crowd_07``, ...) with geometrically decreasing shares (about 39%,
      25%, 16%, 10%, 6%, 4% for six sources), so the smaller ones hold under
      8% of rows.  Each source has its own, mildly different class mix.
    * ``label`` given the source; then latent features given the label: a
      Gaussian per class in whitened space whose centroids are
      ``2 * class_sep`` apart on about 75% of the dimensions (a linear Bayes
      error near ``Phi(-class_sep)`` for two classes), with per-class scale
      differences, mixed by a random linear map so the columns correlate.
    * Each latent column is standardised and given a realistic marginal by a
      monotone map (so it stays informative): location-scale measures with
      1-2 decimals, log-normal amounts with 2 decimals, integer counts, an
      unrounded score, ratios in (0, 1) with 3 decimals.
    * ``cat_j``: 3-6 string levels whose frequencies tilt mildly with the
      label.
    * ``label_noise``: that share of rows then gets a different random class
      (natural noise; it is part of the "clean" data).

    ``random_state`` (non-negative int) fixes everything.  By default it also
    fixes the distribution; pass ``distribution_seed`` to draw a fresh sample
    (``random_state``) from a fixed distribution (``distribution_seed``),
    e.g. a trusted reference for a training table.
    ``distribution_seed=None`` means ``distribution_seed=random_state``.
    1M rows take about a second.
    """
    random_state = check_seed(random_state)
    dseed = random_state if distribution_seed is None else check_seed(distribution_seed)
    n_rows = int(n_rows)
    _check_table_args(n_rows, n_numeric, n_categorical, n_classes, n_sources, label_noise)
    dist = _distribution(np.random.default_rng([dseed, 7001]), int(n_numeric), n_categorical, int(n_classes),
                         int(n_sources), class_sep)
    rng = np.random.default_rng([random_state, 7002])  # the sample
    src, y, u = _draw_latent(dist, n_rows, rng)
    columns: dict[str, Any] = {"row_id": _row_ids(n_rows)} if with_id else {}
    columns.update(_observed_columns(dist, src, y, u, rng))
    columns["label"] = _add_label_noise(y, label_noise, int(n_classes), rng).astype(np.int64)
    return pd.DataFrame(columns)


def _check_table_args(n_rows: int, n_numeric: int, n_categorical: int, n_classes: int, n_sources: int,
                      label_noise: float) -> None:
    if n_rows < 1:
        raise ValueError("n_rows must be >= 1")
    if n_numeric < 1:
        raise ValueError("n_numeric must be >= 1")
    if n_categorical < 0:
        raise ValueError("n_categorical must be >= 0")
    if n_classes < 2:
        raise ValueError("n_classes must be >= 2")
    if n_sources < 1:
        raise ValueError("n_sources must be >= 1")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError("label_noise must be in [0, 1)")


def _distribution(prm: np.random.Generator, d: int, n_categorical: int, C: int, S: int,
                  class_sep: float) -> _Distribution:
    """Draw the distribution's parameters, in a fixed order, from `prm`."""
    shares = np.exp(-0.45 * np.arange(S)) * np.exp(prm.normal(0.0, 0.1, S))
    shares /= shares.sum()
    base_logits = prm.normal(0.0, 0.3, C)
    class_given_source = _softmax(base_logits[None, :] + prm.normal(0.0, 0.3, (S, C)))
    n_inf = max(1, int(round(0.75 * d)))
    mu = np.zeros((C, d))
    mu[:, :n_inf] = _centroids(prm, C, n_inf, class_sep)
    class_scale = prm.uniform(0.85, 1.15, C)
    mix = np.eye(d) + 0.35 * prm.normal(size=(d, d)) * (1.0 - np.eye(d))
    kinds = [_NUMERIC_KINDS[j % len(_NUMERIC_KINDS)] for j in range(d)]
    kind_params = [_kind_params(prm, kind) for kind in kinds]
    cat_specs = []
    for j in range(n_categorical):
        levels = _CAT_LEVELS[j % len(_CAT_LEVELS)]
        L = len(levels)
        logits = prm.normal(0.0, 0.6, L)[None, :] + prm.normal(0.0, 0.45, (C, L))
        cat_specs.append((np.asarray(levels, dtype=object), _softmax(logits)))
    return _Distribution(shares, class_given_source, mu, class_scale, mix, kinds, kind_params, cat_specs)


def _centroids(prm: np.random.Generator, C: int, n_inf: int, class_sep: float) -> np.ndarray:
    """Class centroids on the `n_inf` informative dimensions (C x n_inf)."""
    if C == 2:
        w = prm.normal(size=n_inf)
        w /= np.linalg.norm(w)
        return np.stack([-w, w]) * class_sep
    g = prm.normal(size=(n_inf, C))
    if C <= n_inf:
        q, _ = np.linalg.qr(g)
        centroids = q[:, :C].T * np.sqrt(2.0) * class_sep
    else:
        centroids = (g / np.linalg.norm(g, axis=0)).T * np.sqrt(2.0) * class_sep
    centroids -= centroids.mean(axis=0)
    return centroids


def _kind_params(prm: np.random.Generator, kind: str) -> tuple:
    """The parameters of one numeric column's marginal map."""
    if kind == "measure":
        loc = float(prm.choice([20.0, 50.0, 100.0, 170.0]))
        return (loc, loc * prm.uniform(0.06, 0.15), int(prm.choice([1, 2])))
    if kind == "amount":
        return (prm.uniform(2.0, 5.0), prm.uniform(0.4, 0.7))
    if kind == "count":
        return (prm.uniform(0.8, 2.0), prm.uniform(0.3, 0.5))
    if kind == "score":
        return (prm.uniform(-1.0, 1.0), prm.uniform(0.5, 3.0))
    return (prm.uniform(-0.8, 0.8), prm.uniform(0.6, 1.0))  # ratio


def _draw_latent(dist: _Distribution, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources, labels and the standardised latent matrix of `n` rows."""
    d = dist.mix.shape[0]
    src = rng.choice(len(dist.shares), size=n, p=dist.shares)
    y = _sample_rows(dist.class_given_source, src, rng)
    z = rng.standard_normal((n, d))
    z *= dist.class_scale[y][:, None]
    z += dist.mu[y]
    # exact mean and std of the mixed latent columns under the mixture, so each is standardised
    prior = dist.shares @ dist.class_given_source
    m = prior @ dist.mu
    second = (prior * dist.class_scale**2).sum() * np.eye(d) + (dist.mu.T * prior) @ dist.mu - np.outer(m, m)
    lat_mean = m @ dist.mix
    lat_std = np.sqrt(np.diag(dist.mix.T @ second @ dist.mix))
    return src, y, (z @ dist.mix - lat_mean) / lat_std


def _numeric_column(kind: str, p: tuple, x: np.ndarray) -> np.ndarray:
    """A standardised latent column through its kind's monotone map, rounded like real data."""
    if kind == "measure":
        return np.round(p[0] + p[1] * x, p[2])
    if kind == "amount":
        return np.round(np.exp(p[0] + p[1] * x), 2)
    if kind == "count":
        return np.floor(np.exp(p[0] + p[1] * x)).astype(np.int64)
    if kind == "score":
        return p[0] + p[1] * x
    return np.round(1.0 / (1.0 + np.exp(-(p[0] + p[1] * x))), 3)


def _row_ids(n: int) -> np.ndarray:
    width = max(6, len(str(n - 1)))
    return ("r" + pd.Series(np.arange(n)).astype(str).str.zfill(width)).to_numpy()


def _observed_columns(dist: _Distribution, src: np.ndarray, y: np.ndarray, u: np.ndarray,
                      rng: np.random.Generator) -> dict[str, Any]:
    """The numeric, categorical and source columns (categoricals drawn from `rng`, in column order)."""
    columns: dict[str, Any] = {}
    for j, (kind, p) in enumerate(zip(dist.kinds, dist.kind_params, strict=True)):
        columns[f"num_{j}"] = _numeric_column(kind, p, u[:, j])
    for j, (levels, probs) in enumerate(dist.cat_specs):
        columns[f"cat_{j}"] = pd.array(levels[_sample_rows(probs, y, rng)], dtype="str")
    names = np.asarray(_source_names(len(dist.shares)), dtype=object)
    columns["source"] = pd.array(names[src], dtype="str")
    return columns


def _add_label_noise(y: np.ndarray, label_noise: float, C: int, rng: np.random.Generator) -> np.ndarray:
    """Move `label_noise` of the rows (in place) to a random other of the `C` classes."""
    n_noise = int(round(label_noise * len(y)))
    if n_noise:
        idx = rng.choice(len(y), size=n_noise, replace=False)
        y[idx] = (y[idx] + rng.integers(1, C, size=n_noise)) % C
    return y
