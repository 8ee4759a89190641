"""Tables over every subset of tasks, for problems with a dozen tasks or so.

A subset is a bit mask: task ``t`` is in ``S`` when bit ``t`` of ``S`` is set.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Entries of one intermediate array while filling partition tables (8M floats: 64 MB).
_CHUNK_ENTRIES = 8_000_000


@lru_cache(maxsize=4)
def split_pairs(num_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (set, part) pair where the part holds the set's lowest task, grouped by set.

    Returns:
        ``parts``: the parts, grouped by set in increasing order of the set;
        ``starts``: for each set ``S`` (index ``S``), where its parts begin in ``parts``;
        ``ends``: where they end. The empty set has no parts.
    """
    full = 1 << num_tasks
    parts, starts, ends = [], np.zeros(full, dtype=np.int64), np.zeros(full, dtype=np.int64)
    offset = 0
    bit_values = 1 << np.arange(num_tasks, dtype=np.int64)
    for s in range(1, full):
        low = s & -s
        rest_bits = bit_values[(((s ^ low) >> np.arange(num_tasks)) & 1).astype(bool)]
        codes = np.arange(1 << len(rest_bits), dtype=np.int64)
        chosen = (codes[:, None] >> np.arange(len(rest_bits))) & 1
        parts.append(low | (chosen @ rest_bits))
        starts[s], ends[s] = offset, offset + len(codes)
        offset += len(codes)
    return np.concatenate(parts), starts, ends


def subset_diameters(dissimilarity: np.ndarray) -> np.ndarray:
    """Complete-linkage diameter of every subset of tasks, per block: blocks x 2**tasks.

    Matches :func:`mtl.branching.tree.cluster_cost`: 0 for a single task, else the
    largest entry of the dissimilarity restricted to the subset.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    blocks, num_tasks, _ = d.shape
    largest = np.full((blocks, 1 << num_tasks), -np.inf)
    for h in range(num_tasks):
        lower = 1 << h
        # to_h[:, R]: the largest dissimilarity between task h and the tasks of R or h itself.
        to_h = np.full((blocks, lower), -np.inf)
        to_h[:, 0] = d[:, h, h]
        for t in range(h):
            to_h[:, 1 << t : 2 << t] = np.maximum(to_h[:, : 1 << t], d[:, h, t : t + 1])
        largest[:, lower : 2 * lower] = np.maximum(largest[:, :lower], to_h)
    sizes = np.array([bin(s).count("1") for s in range(1 << num_tasks)])
    return np.where(sizes[None, :] >= 2, largest, 0.0)


def partition_sum_table(diameters: np.ndarray, num_tasks: int) -> np.ndarray:
    """``f[b, S, j]``: smallest sum of diameters over partitions of ``S`` into ``j`` clusters.

    Infinite where no such partition exists (``j`` larger than ``|S|``, or 0 for a
    nonempty set).
    """
    blocks = diameters.shape[0]
    parts, starts, ends = split_pairs(num_tasks)
    owners = np.repeat(np.arange(1 << num_tasks), ends - starts)
    rests = owners ^ parts
    nonempty = np.arange(1, 1 << num_tasks)

    # by_count[j, b, S] while filling, so that each step reads one contiguous row.
    by_count = np.full((num_tasks + 1, blocks, 1 << num_tasks), np.inf)
    by_count[0, :, 0] = 0.0
    by_count[1, :, nonempty] = diameters[:, nonempty].T
    chunk = max(1, _CHUNK_ENTRIES // max(len(parts), 1))
    for first in range(0, blocks, chunk):
        rows = slice(first, first + chunk)
        part_diameters = diameters[rows][:, parts]
        for j in range(2, num_tasks + 1):
            candidates = part_diameters + by_count[j - 1, rows][:, rests]
            by_count[j, rows][:, nonempty] = np.minimum.reduceat(
                candidates, starts[nonempty], axis=1
            )
    table = np.ascontiguousarray(by_count.transpose(1, 2, 0))
    return table
