"""Spectral signatures and feature clustering on Spark: split conformal.

Against a trusted side both signals rank split-conformal p-values
(core/signals/split_pvalues.py): the batch class's direction (spectral) or
2-means (feature clustering) is learned on one half of the class, the other
half and the trusted rows of the class are scored by it, and each block of
halves is gated on its own (Bonferroni over the two). Here:

* the half of a row is `HALF`, a fair coin drawn once per row when the
  table is scored (run.py) and persisted with it: independent of the data,
  so the split stays exactly valid, and the same in every pass;
* pass 1 (`mapInPandas`, tiny output): per (signal, class, half) the row
  count and, for spectral, the sums of R and of R R^T (R = the signal's
  representation), summed on the driver: the class mean and covariance of
  a half are exact, so the top direction is the pandas engine's for the
  same half;
* pass 2 (feature clustering only): a uniform random sample of at most
  `max_fit_rows` rows per (class, half), the rows the pandas engine's
  2-means is fitted on too (it samples as many);
* the driver learns each half's scorer as the core does and scores the
  trusted rows of the class with it (the profile's stored arrays);
* pass 3 (`mapInPandas` over the persisted scored table): every row's score
  by the scorer of the OTHER half, its conformal p-value among the trusted
  scores, its group; the row's combined p-value is recomputed with these;
* the gate: `core.verdicts.gate.family_verdict` on the p-values <= 0.1
  padded with ones (as decide.py; its `estimated_share` would need every
  p-value, so it is left out).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pandas as pd

from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.representation import apply_representation
from poison_expectations.engines.spark.scoring import ScoringPlan

HALF = "split_half"  # the row's half (0 or 1), drawn in run.py before the scored table is persisted
MIN_CLASS_ROWS = 20  # as both core signals: smaller (class, half) blocks are untested (uniform p-values)
SAMPLE_MARGIN = 6.0  # standard deviations of slack in the sample's inclusion rate


def encoded(plan: ScoringPlan, frame: pd.DataFrame, reps: dict[str, dict]) -> tuple[np.ndarray, dict]:
    """(label codes, representation per signal) of a chunk, by the profile's encoder."""
    from poison_expectations.core.analysis import build_analysis

    analysis = build_analysis(frame, plan.roles, plan.options, profile=plan.profile())
    return analysis.batch.y, {name: apply_representation(rep, analysis.batch.X) for name, rep in reps.items()}


def _sums_partition(plan, columns, reps, spectral, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Pass 1: per (signal, class, half) n, sum R and sum R R^T (spectral only) of this partition."""
    acc: dict[tuple, list] = {}
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        y, rep = encoded(plan, chunk[columns].reset_index(drop=True), reps)
        half = chunk[HALF].to_numpy(dtype=np.int64)
        for name, R in rep.items():
            R = R.astype(np.float64)
            for c in np.unique(y):
                for h in (0, 1):
                    rows = R[(y == c) & (half == h)]
                    if not len(rows):
                        continue
                    entry = acc.setdefault((name, int(c), h), [0, 0.0, 0.0])
                    entry[0] += len(rows)
                    if name in spectral:
                        entry[1] = entry[1] + rows.sum(axis=0)
                        entry[2] = entry[2] + rows.T @ rows
    out = [{"name": k[0], "code": k[1], "half": k[2], "n": v[0],
            "s": np.ravel(v[1]).tolist(), "ss": np.ravel(v[2]).tolist()} for k, v in acc.items()]
    yield pd.DataFrame(out, columns=["name", "code", "half", "n", "s", "ss"])


def _sample_partition(plan, columns, reps, rates, seed, chunks) -> Iterator[pd.DataFrame]:
    """Pass 2: rows kept with probability rates[(signal, class, half)], with their uniform draw."""
    from pyspark import TaskContext

    partition = TaskContext.get().partitionId()
    for number, chunk in enumerate(chunks):
        if len(chunk) == 0:
            continue
        y, rep = encoded(plan, chunk[columns].reset_index(drop=True), reps)
        half = chunk[HALF].to_numpy(dtype=np.int64)
        u = np.random.default_rng([seed, 17, partition, number]).random(len(y))
        for name, R in rep.items():
            rate = np.array([rates.get((name, int(c), int(h)), 0.0) for c, h in zip(y, half, strict=True)])
            keep = np.flatnonzero(u < rate)
            if len(keep):
                yield pd.DataFrame({"name": name, "code": y[keep], "half": half[keep], "u": u[keep],
                                    "r": list(R[keep].astype(np.float64))})


def class_sums(scored, plan, columns, reps, spectral) -> dict[tuple, tuple]:
    """(signal, class, half) -> (n, sum R, sum R R^T): exact, summed on the driver."""
    from pyspark.sql.types import StructType

    schema = StructType.fromDDL("name string, code long, half long, n long, s array<double>, ss array<double>")
    body = functools.partial(_sums_partition, plan, columns, reps, frozenset(spectral))
    rows = scored.select(*[f"`{c}`" for c in columns], HALF).mapInPandas(body, schema).toPandas()
    out: dict[tuple, tuple] = {}
    for r in rows.itertuples(index=False):
        key = (r.name, int(r.code), int(r.half))
        d = int(np.sqrt(len(r.ss))) if len(r.ss) else 0
        s, ss = np.asarray(r.s, dtype=float), np.asarray(r.ss, dtype=float).reshape(d, d)
        if key in out:
            n0, s0, ss0 = out[key]
            out[key] = (n0 + int(r.n), s0 + s if len(s) else s0, ss0 + ss if d else ss0)
        else:
            out[key] = (int(r.n), s, ss)
    return out


def class_samples(scored, plan, columns, reps, counts: dict[tuple, int], m: dict[str, int],
                  seed: int) -> dict[tuple, np.ndarray]:
    """(signal, class, half) -> a uniform sample of min(m, n) of its rows (R): every row
    when n <= m, else the m smallest of the rows' uniform draws, gathered with a
    rate of m plus SAMPLE_MARGIN standard deviations over n."""
    from pyspark.sql.types import StructType

    rates = {}
    for key, n in counts.items():
        want = m[key[0]]
        rates[key] = 1.0 if n <= want else min(1.0, (want + SAMPLE_MARGIN * np.sqrt(want) + 20) / n)
    schema = StructType.fromDDL("name string, code long, half long, u double, r array<double>")
    body = functools.partial(_sample_partition, plan, columns, reps, rates, seed)
    rows = scored.select(*[f"`{c}`" for c in columns], HALF).mapInPandas(body, schema).toPandas()
    out = {}
    for (name, code, half), group in rows.groupby(["name", "code", "half"]):
        group = group.sort_values("u").head(m[name])
        out[(name, int(code), int(half))] = np.vstack(group["r"].to_numpy()).astype(np.float32)
    return out


def spectral_scorer(n: int, s: np.ndarray, ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, top direction) of a block from its sums: the top eigenvector of the
    centred scatter sum (R - mean)^T (R - mean) = ss - n mean mean^T, as spectral._direction."""
    mean = s / n
    _, vectors = np.linalg.eigh(ss - n * np.outer(mean, mean))
    return mean, vectors[:, -1]


def apply_scorer(kind: str, model: tuple, R: np.ndarray) -> np.ndarray:
    """A block's score of rows R: spectral tau, or feature clustering's pull to the small cluster."""
    if kind == "spectral":
        mean, v = model
        return ((R.astype(np.float64) - mean) @ v) ** 2
    from poison_expectations.core.signals.feature_clustering import _pull

    mean, basis, kmeans, small_id = model
    return _pull(kmeans, (R - mean) @ basis, small_id)


def fit_clustering(signal, R_fit: np.ndarray, seed: int) -> tuple:
    """Feature clustering's model of a block, as its `batch_pvalues` fits it."""
    from poison_expectations.core.signals.representation import single_threaded

    mean, basis, kmeans, Z_fit = signal._model(R_fit, np.random.default_rng([seed, 13]))
    with single_threaded():
        small_id = int(np.argmin(np.bincount(kmeans.predict(Z_fit), minlength=2)))
    return mean, basis, kmeans, small_id


def signal_state(profile, signal) -> dict:
    state = profile.states.get(signal.cache_key())
    if state is None:
        raise InputError(profile.missing_state_message(signal))
    return state


def padded_result(small: pd.DataFrame, counts: dict[int, int], ref_sizes: dict[int, int], p_col: str,
                  g_col: str) -> Any:
    """The p-values <= ALPHA0 padded with ones, their groups (tested (class, half)
    blocks in class order, then the untested rows of each half) and the two
    halves as blocks: what family_verdict reads of a SignalResult."""
    keys = sorted(k for k in counts if k >= 0) + [k for k in (-1, -2) if k in counts]
    p_parts, g_parts = [], []
    for index, key in enumerate(keys):
        mine = small.loc[small[g_col] == key, p_col].to_numpy(dtype=float)
        p_parts.append(np.concatenate([mine, np.ones(counts[key] - len(mine))]))
        g_parts.append(np.full(counts[key], index, dtype=np.int64))
    p = np.concatenate(p_parts) if p_parts else np.empty(0)
    group_of_row = np.concatenate(g_parts) if g_parts else np.empty(0, dtype=np.int64)
    half_of_key = np.array([k % 2 if k >= 0 else -1 - k for k in keys], dtype=np.int64)
    halves = half_of_key[group_of_row] if len(keys) else np.empty(0, dtype=np.int64)
    groups = tuple((int(ref_sizes.get(k, 0)), int(counts[k])) for k in keys)
    blocks = [np.flatnonzero(halves == h) for h in (0, 1) if (halves == h).any()]
    return SimpleNamespace(n_rows=len(p), batch_test=None, pvalues=p, pvalue_groups=(groups, group_of_row),
                           pvalue_blocks=blocks)
