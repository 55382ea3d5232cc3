"""Confident learning (Northcutt et al. 2021) on a matrix of out-of-sample
class probabilities, and the kNN estimate of that matrix; the label-
consistency signal (label_consistency.py) builds on these."""

from __future__ import annotations

import numpy as np


def knn_probabilities(indices, distances, labels, n_classes) -> np.ndarray:
    """Distance-weighted neighbour label shares, smoothed by the class prior."""
    kth = distances[:, -1]
    eps = 0.1 * float(np.median(kth)) if np.median(kth) > 0 else 1e-6
    weights = 1.0 / (distances.astype(np.float64) + eps)
    neighbor_labels = labels[indices]
    probs = np.zeros((indices.shape[0], n_classes))
    for c in range(n_classes):
        probs[:, c] = (weights * (neighbor_labels == c)).sum(axis=1)
    prior = np.bincount(labels, minlength=n_classes) / len(labels)
    probs = (probs / weights.sum(axis=1, keepdims=True)) * indices.shape[1] + 0.5 * prior
    return probs / probs.sum(axis=1, keepdims=True)


def class_thresholds(probs, y, n_classes) -> np.ndarray:
    """t_j = mean P[i, j] over rows labelled j (mean self-confidence)."""
    thresholds = np.ones(n_classes)
    for c in range(n_classes):
        members = y == c
        if members.any():
            thresholds[c] = probs[members, c].mean()
    return thresholds


def confident_joint(probs, y, thresholds, n_classes) -> np.ndarray:
    """Q[i, j]: rows labelled i whose confident class (argmax of P among
    classes with P >= t) is j, calibrated so each row sums to the count of i."""
    passing = probs >= thresholds[None, :]
    counted = passing.any(axis=1)
    best = np.where(passing, probs, -np.inf).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (y[counted], best[counted]), 1)
    class_counts = np.bincount(y, minlength=n_classes)
    row_sums = joint.sum(axis=1, keepdims=True)
    return np.divide(joint * class_counts[:, None], row_sums, out=np.zeros_like(joint), where=row_sums > 0)


def confident_issues(probs, y, thresholds) -> np.ndarray:
    """Prune by noise rate: for each pair (i, j), i != j, flag the Q[i, j]
    rows labelled i with the largest margin P_j - P_i; rows whose given
    label is P's arg max are never flagged."""
    n_classes = probs.shape[1]
    joint = confident_joint(probs, y, thresholds, n_classes)
    flags = np.zeros(len(y), dtype=bool)
    quotas = np.round(joint).astype(np.int64)  # as round() per pair; only pairs with a quota are visited
    np.fill_diagonal(quotas, 0)
    members = {}
    for i, j in zip(*np.nonzero(quotas), strict=True):
        if i not in members:
            members[i] = np.flatnonzero(y == i)
        margin = probs[members[i], j] - probs[members[i], i]
        flags[members[i][np.argsort(-margin, kind="stable")[:quotas[i, j]]]] = True
    flags &= probs.argmax(axis=1) != y
    return flags


def margin_scores(probs, y) -> tuple[np.ndarray, np.ndarray]:
    """(max_{j!=y} P_j - P_y + 1) / 2 and the arg max j."""
    rows = np.arange(len(y))
    own = probs[rows, y]
    others = probs.copy()
    others[rows, y] = -np.inf
    other = others.argmax(axis=1)
    return (others[rows, other] - own + 1.0) / 2.0, other
