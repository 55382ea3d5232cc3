"""Grid-cell helpers shared by the Spark near-duplicate and collision modules:
the rows of a partition's shared cells, and the pairs within each cell, all
cells at once. A partition holds tens of thousands of shared cells of two or
three rows; one pandas group or distance matrix per cell costs ~1 ms each,
vectorised index arithmetic over all of them a few ms in total."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

BLOCK = 1024  # rows of a large cell whose distances to the cell's rows are computed at once
SMALL_CELL = 256  # cells of at most this many rows: their pairs are compared all at once


def within(A: np.ndarray, B: np.ndarray, radius: float) -> np.ndarray:
    """(len(A), len(B)) mask of the float64 vector pairs at most `radius` apart
    (squared distances, with a relative tolerance for the rounding of the expansion)."""
    sa, sb = (A * A).sum(axis=1), (B * B).sum(axis=1)
    d2 = sa[:, None] + sb[None, :] - 2.0 * A @ B.T
    return d2 <= radius ** 2 + 1e-9 * (1 + sa[:, None] + sb[None, :])


def shared_cells(chunks: Iterator[pd.DataFrame], grid: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """(the rows of cells holding two rows or more, sorted by cell, rows in
    their input order within a cell; each cell's first row; its row count),
    or None when no cell is shared."""
    parts = list(chunks)  # a partition the cell hashing left empty has none (tic-tac-toe: few distinct rows)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(frame) < 2:
        return None
    frame = frame[frame[grid].duplicated(keep=False)].sort_values(grid, kind="stable").reset_index(drop=True)
    if len(frame) < 2:
        return None
    cells = frame[grid].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    return frame, starts, np.diff(np.r_[starts, len(cells)])


def cell_pairs_of(starts: np.ndarray, sizes: np.ndarray, limit: int = 1 << 20) -> Iterator[tuple[np.ndarray, ...]]:
    """(a, b) row positions of every pair a < b within each cell (rows
    starts[c] .. starts[c] + sizes[c] - 1), in batches of about `limit` candidates."""
    square = sizes.astype(np.int64) ** 2
    batch = np.cumsum(square) // limit
    for number in np.unique(batch):
        s, m = starts[batch == number], sizes[batch == number].astype(np.int64)
        mm = m * m
        cell = np.repeat(np.arange(len(m)), mm)
        at = np.arange(int(mm.sum())) - np.repeat(np.cumsum(mm) - mm, mm)
        a, b = at // m[cell], at % m[cell]
        keep = a < b
        yield s[cell][keep] + a[keep], s[cell][keep] + b[keep]


def close_pairs_in_cells(X: np.ndarray, starts: np.ndarray, sizes: np.ndarray, radius: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) row positions, a < b, of every pair of one cell at most `radius`
    apart by `within`'s criterion (the same expansion and tolerance): cells
    of at most SMALL_CELL rows all at once, a larger cell in blocks of BLOCK
    rows against the cell (never its whole distance matrix)."""
    norms = (X * X).sum(axis=1)
    small = sizes <= SMALL_CELL
    u, v = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a, b in cell_pairs_of(starts[small], sizes[small]):  # 2^19 pairs x 2 gathers of X at most
        d2 = norms[a] + norms[b] - 2.0 * np.einsum("ij,ij->i", X[a], X[b])
        close = d2 <= radius ** 2 + 1e-9 * (1 + norms[a] + norms[b])
        u.append(a[close])
        v.append(b[close])
    for start, size in zip(starts[~small], sizes[~small], strict=True):
        cell = X[start:start + size]
        for first in range(0, size, BLOCK):
            i, j = np.nonzero(within(cell[first:first + BLOCK], cell, radius))
            i += first
            keep = i < j
            u.append(start + i[keep])
            v.append(start + j[keep])
    return np.concatenate(u), np.concatenate(v)
