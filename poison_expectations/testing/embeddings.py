"""A table with an embedding column and a backdoor planted in it, for the
embedding-space detectors (activation clustering, spectral signatures)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_embedding_backdoor(n: int = 1500, *, dim: int = 32, n_classes: int = 3, rate: float = 0.05,
                            seed: int = 0, shift: float = 4.0, sep: float = 6.0, poison: bool = True,
                            sample_seed: int | None = None,
                            informative_column: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Gaussian class blobs in a `dim`-d embedding column `emb` (centres from
    `seed`, rows from `sample_seed`), with a noise column `a` (and, if
    `informative_column`, a column `b` = noise + label); poison = `rate` of
    the rows of other classes shifted by one fixed trigger vector (norm
    `shift`) and relabelled to class 0. Returns (frame, is_poison)."""
    centres = np.random.default_rng(seed).normal(size=(n_classes, dim)) * sep / np.sqrt(2 * dim)
    rng = np.random.default_rng([seed, seed if sample_seed is None else sample_seed, 1])
    y = rng.integers(n_classes, size=n)
    emb = centres[y] + rng.normal(size=(n, dim))
    truth = np.zeros(n, dtype=bool)
    if poison:
        idx = rng.choice(np.flatnonzero(y != 0), size=int(rate * n), replace=False)
        trigger = rng.normal(size=dim)
        emb[idx] += trigger * shift / np.linalg.norm(trigger)
        y[idx] = 0
        truth[idx] = True
    frame = pd.DataFrame({"row_id": np.arange(n), "a": rng.normal(size=n)})
    if informative_column:
        frame["b"] = rng.normal(size=n) + y
    frame["emb"] = list(emb.astype(np.float32))
    frame["label"] = y
    return frame, truth
