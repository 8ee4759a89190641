"""A quick feasible tree: choose copy counts, then cluster tasks bottom-up.

First every block is clustered on its own, merging the two clusters whose union
adds least to the sum of diameters, which estimates each block's best cost for
every copy count. Copy counts are then raised greedily, best cost gain per unit
of budget first, while the tree still fits. Finally the tree is built from the
deepest block up: clusters of block ``b`` are merged into those of block
``b - 1``, so every partition refines the one above it by construction.
"""

from __future__ import annotations

import numpy as np

from mtl.branching.bounds import within_limits
from mtl.branching.search import SearchProblem, no_feasible_tree_message
from mtl.branching.tree import BranchedTree


class _Agglomeration:
    """Complete-linkage clusters of tasks over several blocks at once.

    Args:
        dissimilarity: blocks x tasks x tasks.
    """

    def __init__(self, dissimilarity: np.ndarray) -> None:
        d = np.asarray(dissimilarity, dtype=np.float64)
        num_tasks = d.shape[1]
        self.cross = d.copy()  # cross[b, i, j]: largest dissimilarity between clusters i and j
        self.diameter = np.zeros((d.shape[0], num_tasks))
        self.active = np.ones(num_tasks, dtype=bool)
        self.label = np.arange(num_tasks)

    @property
    def num_clusters(self) -> int:
        return int(self.active.sum())

    def increase(self, weights: np.ndarray) -> np.ndarray:
        """Weighted rise of the blocks' diameter sums for merging each pair of clusters."""
        merged = np.maximum(
            self.cross, np.maximum(self.diameter[:, :, None], self.diameter[:, None, :])
        )
        rise = merged - self.diameter[:, :, None] - self.diameter[:, None, :]
        rise = np.tensordot(weights, rise, axes=1)
        usable = self.active[:, None] & self.active[None, :]
        np.fill_diagonal(usable, False)
        return np.where(usable, rise, np.inf)

    def merge_once(self, weights: np.ndarray) -> float:
        """Merge the pair with the smallest weighted rise; return that rise."""
        rise = self.increase(weights)
        i, j = np.unravel_index(np.argmin(rise), rise.shape)
        self.diameter[:, i] = np.maximum(
            np.maximum(self.diameter[:, i], self.diameter[:, j]), self.cross[:, i, j]
        )
        self.cross[:, i, :] = np.maximum(self.cross[:, i, :], self.cross[:, j, :])
        self.cross[:, :, i] = self.cross[:, i, :]
        self.active[j] = False
        self.label[self.label == j] = i
        return float(rise[i, j])


def agglomerative_block_costs(dissimilarity: np.ndarray) -> np.ndarray:
    """Per block and copy count, the mean cost of a greedy partition: blocks x (tasks + 1).

    Column ``k`` holds the cost (mean complete-linkage diameter) that merging
    clusters from singletons down to ``k`` reaches; column 0 is infinite. An upper
    estimate of each block's best cost, not a bound.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    blocks, num_tasks, _ = d.shape
    costs = np.full((blocks, num_tasks + 1), np.inf)
    for b in range(blocks):
        clusters = _Agglomeration(d[b : b + 1])
        total = 0.0
        costs[b, num_tasks] = 0.0
        for k in range(num_tasks - 1, 0, -1):
            total += clusters.merge_once(np.ones(1))
            costs[b, k] = total / k
    return costs


def greedy_copy_counts(problem: SearchProblem, block_costs: np.ndarray) -> np.ndarray:
    """Raise copy counts from one per block while the budget allows, best gain per budget first.

    Args:
        problem: supplies the limits.
        block_costs: blocks x (tasks + 1) estimated cost of each block by copy count.
    """
    blocks, num_tasks = problem.num_blocks, problem.num_tasks
    counts = np.ones(blocks, dtype=np.int64)
    if not within_limits(problem, counts[None])[0]:
        raise ValueError(no_feasible_tree_message(problem))
    used = problem.resources_of(counts)
    room = {name: max(limit - used[name], 1e-300) for name, limit in problem.limits.items()}
    levels = np.arange(blocks)

    while True:
        current = block_costs[levels, counts].sum()
        best, best_score = None, 0.0
        for b in range(blocks):
            if counts[b] >= num_tasks:
                continue
            grown = counts.copy()
            grown[b:] = np.maximum(grown[b:], counts[b] + 1)
            gain = current - block_costs[levels, grown].sum()
            if gain <= 1e-15 or not within_limits(problem, grown[None])[0]:
                continue
            added = grown - counts
            share = max(
                (added @ problem.block_resources[name] / room[name] for name in problem.limits),
                default=0.0,
            )
            score = gain / max(share, 1e-12)
            if score > best_score:
                best, best_score = grown, score
        if best is None:
            return counts
        counts = best


def nested_partitions(dissimilarity: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A blocks x tasks assignment with ``counts[b]`` clusters per block, each refining the last.

    Built from the deepest block up; a merge made for block ``b`` also holds in
    every block above, so it is weighed by its rise in all of them (block ``b'``
    weighted by ``1 / counts[b']``, its share in that block's mean).
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    blocks, num_tasks, _ = d.shape
    clusters = _Agglomeration(d)
    assignment = np.empty((blocks, num_tasks), dtype=np.int64)
    weights = 1.0 / np.asarray(counts, dtype=np.float64)
    for b in range(blocks - 1, -1, -1):
        above = np.where(np.arange(blocks) <= b, weights, 0.0)
        while clusters.num_clusters > counts[b]:
            clusters.merge_once(above)
        assignment[b] = clusters.label
    return assignment


def greedy_tree(problem: SearchProblem) -> BranchedTree:
    """A feasible tree from estimated block costs, greedy copy counts and nested clustering."""
    block_costs = agglomerative_block_costs(problem.dissimilarity)
    counts = greedy_copy_counts(problem, block_costs)
    assignment = nested_partitions(problem.dissimilarity, counts)
    return BranchedTree.from_assignment(problem.tasks, assignment)
