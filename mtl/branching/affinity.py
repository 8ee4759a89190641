"""Task affinity by representation similarity analysis (RSA).

For each task and branch point, the K x K representation dissimilarity matrix
(RDM) holds ``1 - Pearson correlation`` between the flattened activations of
two images. Two tasks' affinity at a branch point is the Spearman rank
correlation between the strict upper triangles of their RDMs.
"""

from __future__ import annotations

import numpy as np


def representation_dissimilarity(features: np.ndarray) -> np.ndarray:
    """K x K matrix of ``1 - Pearson correlation`` between the rows of a K x F array.

    A row with zero variance has no defined correlation; it is treated as
    uncorrelated with every other row (dissimilarity 1).
    """
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if x.shape[0] < 3:
        raise ValueError(f"RSA needs at least 3 images, got {x.shape[0]}")
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    constant = norms == 0
    norms[constant] = 1.0
    x = x / norms[:, None]

    correlation = np.clip(x @ x.T, -1.0, 1.0)
    correlation[constant, :] = 0.0
    correlation[:, constant] = 0.0
    np.fill_diagonal(correlation, 1.0)
    return 1.0 - correlation


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties sharing the mean of their ranks (along the last axis)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    ranks = np.empty_like(values, dtype=np.float64)
    for row, (idx, vals) in enumerate(zip(order, sorted_values)):
        starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
        ends = np.r_[starts[1:], len(vals)]
        mean_rank = (starts + ends + 1) / 2.0
        ranks[row, idx] = np.repeat(mean_rank, ends - starts)
    return ranks


def rdm_affinity(rdms: np.ndarray) -> np.ndarray:
    """T x T Spearman correlations between the strict upper triangles of T RDMs."""
    rdms = np.asarray(rdms, dtype=np.float64)
    k = rdms.shape[-1]
    upper = np.triu_indices(k, k=1)
    ranks = _ranks(rdms[:, upper[0], upper[1]])

    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ranks, axis=1)
    norms[norms == 0] = 1.0
    ranks /= norms[:, None]
    return np.clip(ranks @ ranks.T, -1.0, 1.0)


def dissimilarity_tensor(features: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Affinity and dissimilarity tensors from activations.

    Args:
        features: ``features[d][t]`` is a K x ... array of task ``t``'s single-task
            network activations at branch point ``d`` for the same K images.

    Returns:
        ``(affinity, dissimilarity)``, each of shape (points, tasks, tasks), with
        ``dissimilarity = 1 - affinity``.
    """
    affinity = np.stack(
        [
            rdm_affinity(np.stack([representation_dissimilarity(f) for f in per_task]))
            for per_task in features
        ]
    )
    return affinity, 1.0 - affinity
