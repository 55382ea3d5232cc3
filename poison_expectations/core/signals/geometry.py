"""Class-conditional geometry: the sphere and slab defences of Steinhardt,
Koh & Liang (2017), "Certified defenses for data poisoning attacks".

With class centroids mu_y fitted on the trusted rows (the reference, else
the batch itself), in the shared encoded feature space (robust-scaled
columns):
- sphere: ||x - mu_y||, the row's distance to its own class's centroid;
- slab: (x - mu_y) . u, with u the unit vector from mu_y toward the
  nearest other class's centroid (for two classes, the other class; the
  paper is binary); the cut applies to its absolute deviation from the
  class's centre, as the paper's |(x - mu_y) . (mu_y - mu_-y)|. A row pushed
  toward another class (boundary poisoning) sits far along that direction
  while possibly staying inside the sphere.
The paper sets the radius r_y and slab width s_y from a high quantile of
clean rows; here that is the per-class cut of `normalise` (the reference's
quantile, or a robust z in a self-check). Steinhardt et al. also show that
3% poison can evade both in high dimension, so they are one signal among
several.
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 262_144


def centroids(X: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class means (n_classes, d) and a mask of the classes present."""
    d = X.shape[1]
    sums = np.zeros((n_classes, d))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    for start in range(0, len(y), CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        np.add.at(sums, y[part], X[part].astype(np.float64))
    present = counts > 0
    means = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=present[:, None])
    return means, present


def sphere_slab(X: np.ndarray, y: np.ndarray, means: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance to own centroid, signed position toward the nearest other centroid) per row.

    The slab direction of class y is the unit vector from mu_y to the
    nearest other class centroid (the only other one for two classes). A
    row whose class has no centroid (absent from the fitted rows) gets NaN
    for both; the caller decides what that means.
    """
    n = X.shape[0]
    sphere = np.full(n, np.nan)
    slab = np.full(n, np.nan)
    for c in np.unique(y):
        if not present[c]:
            continue
        rows = np.flatnonzero(y == c)
        direction = slab_direction(means, present, c)
        for start in range(0, rows.size, CHUNK_ROWS):
            part = rows[start:start + CHUNK_ROWS]
            centred = X[part].astype(np.float64) - means[c]
            sphere[part] = np.sqrt(np.einsum("ij,ij->i", centred, centred))
            slab[part] = centred @ direction
    return sphere, slab


def slab_direction(means: np.ndarray, present: np.ndarray, c: int) -> np.ndarray:
    """Unit vector from centroid c to the nearest other centroid (zeros if none)."""
    others = np.flatnonzero(present)
    others = others[others != c]
    if others.size == 0:
        return np.zeros(means.shape[1])
    offsets = means[others] - means[c]
    norms = np.linalg.norm(offsets, axis=1)
    nearest = int(np.argmin(np.where(norms > 0, norms, np.inf)))
    if norms[nearest] <= 0 or not np.isfinite(norms[nearest]):
        return np.zeros(means.shape[1])
    return offsets[nearest] / norms[nearest]


def nearest_other(means: np.ndarray, present: np.ndarray) -> dict[int, int]:
    """For each present class, the code of the nearest other class centroid."""
    out = {}
    codes = np.flatnonzero(present)
    for c in codes:
        others = codes[codes != c]
        if others.size:
            out[int(c)] = int(others[np.argmin(np.linalg.norm(means[others] - means[c], axis=1))])
    return out
