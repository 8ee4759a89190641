"""Lower bounds on the cost of the best tree, from the copy counts a budget allows.

The cost of block ``b`` depends only on its partition ``P_b`` and its resources
only on the copy count ``k_b = |P_b|``. Copy counts never decrease going deeper,
because every partition refines the one before it. So if ``m_b(k)`` is a lower
bound on the cost of block ``b`` with ``k`` copies, the best tree costs at least
the minimum of ``sum_b m_b(k_b)`` over nondecreasing copy counts within budget.
Blocks with equal copy counts share their partition, which tightens the bound
further (:func:`run_lower_bound`).

For a dozen tasks or fewer, ``m_b(k)`` is exact from tables over all subsets of
tasks. For more, it comes from relaxations of the best sum of cluster diameters;
they are valid but can be loose (on random dissimilarities among 40 tasks, about
half the true value for blocks with many copies).
"""

from __future__ import annotations

import time
from math import comb

import numpy as np

from mtl.branching.search import SearchProblem
from mtl.branching.subsets import partition_sum_table, subset_diameters

# Enumerate copy-count vectors up to this many; beyond it, bound through a budget grid.
MAX_ENUMERATED_COUNTS = 200_000
BUDGET_GRID_CELLS = 4_000


def count_copy_vectors(num_tasks: int, num_blocks: int) -> int:
    """How many nondecreasing copy-count vectors (1 <= k_1 <= ... <= k_B <= tasks) exist."""
    return comb(num_tasks + num_blocks - 1, num_blocks)


def copy_count_vectors(num_tasks: int, num_blocks: int) -> np.ndarray:
    """Every nondecreasing copy-count vector, one per row, shallowest block first."""
    rows = np.arange(1, num_tasks + 1, dtype=np.int16)[:, None]
    for _ in range(num_blocks - 1):
        last = rows[:, -1].astype(np.int64)
        repeats = num_tasks - last + 1
        grown = np.repeat(rows, repeats, axis=0)
        # Within each repeated row, the new last count runs from the old last count up.
        offsets = np.arange(len(grown)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        new_last = np.repeat(last, repeats) + offsets
        rows = np.column_stack([grown, new_last.astype(np.int16)])
    return rows


def within_limits(problem: SearchProblem, counts: np.ndarray) -> np.ndarray:
    """Mask of copy-count rows whose resources fit every limit of the problem."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, problem.num_blocks)
    fits = np.ones(len(counts), dtype=bool)
    for name, limit in problem.limits.items():
        total = problem.fixed_resources.get(name, 0.0) + counts @ problem.block_resources[name]
        fits &= total <= limit * (1 + 1e-12)
    return fits


def feasible_copy_counts(problem: SearchProblem) -> np.ndarray:
    """Every nondecreasing copy-count vector within the problem's limits."""
    counts = copy_count_vectors(problem.num_tasks, problem.num_blocks)
    return counts[within_limits(problem, counts)]


def monotone_block_bounds(block_bounds: np.ndarray) -> np.ndarray:
    """Tighten per-block bounds using that a block's best cost never rises with more copies.

    Splitting one task off a cluster lowers the mean over clusters, so the best
    cost with ``k`` copies is at least the best cost with any larger count.

    Args:
        block_bounds: blocks x (tasks + 1) lower bounds, column ``k`` for ``k`` copies
            (column 0 unused).
    """
    bounds = np.array(block_bounds, dtype=np.float64)
    bounds[:, 1:] = np.maximum.accumulate(bounds[:, :0:-1], axis=1)[:, ::-1]
    bounds[:, 0] = np.inf
    return bounds


def chain_lower_bound(problem: SearchProblem, block_bounds: np.ndarray) -> float:
    """Smallest ``sum_b block_bounds[b, k_b]`` over nondecreasing copy counts within budget.

    Exact over copy counts when they can be enumerated; otherwise each limit is
    relaxed onto a grid of budget cells rounded in the tree's favour, which still
    bounds from below.

    Args:
        problem: the search problem whose limits apply.
        block_bounds: blocks x (tasks + 1) lower bounds on each block's cost by copy count.
    """
    bounds = np.asarray(block_bounds, dtype=np.float64)
    if count_copy_vectors(problem.num_tasks, problem.num_blocks) <= MAX_ENUMERATED_COUNTS:
        counts = feasible_copy_counts(problem)
        if not len(counts):
            return np.inf
        blocks = np.arange(problem.num_blocks)
        return float(bounds[blocks, counts].sum(axis=1).min())

    best = _unconstrained_chain_bound(bounds)
    for name in problem.limits:
        best = max(best, _grid_chain_bound(problem, bounds, name))
    return best


def _unconstrained_chain_bound(bounds: np.ndarray) -> float:
    """Smallest sum over nondecreasing copy counts, ignoring every limit."""
    best = np.full(bounds.shape[1], np.inf)
    best[1:] = 0.0
    for row in bounds:
        best = np.minimum.accumulate(best) + row
    return float(best[1:].min())


def _budget_grid(problem: SearchProblem, name: str) -> tuple[np.ndarray, float, int] | None:
    """One limit's grid: per-block resources, the cell size and the number of cells.

    Resources are rounded down onto cells, so a bound computed on the grid never
    excludes a tree that fits; None when the fixed resources alone exceed the limit.
    """
    room = problem.limits[name] * (1 + 1e-12) - problem.fixed_resources.get(name, 0.0)
    if room < 0:
        return None
    cell = room / BUDGET_GRID_CELLS if room > 0 else 1.0
    cells = int(np.floor(room / cell)) + 1  # one cell of slack against rounding
    return problem.block_resources[name], cell, cells


def _grid_chain_bound(problem: SearchProblem, bounds: np.ndarray, name: str) -> float:
    """Chain bound under one limit, with resources rounded down onto a grid of cells."""
    grid = _budget_grid(problem, name)
    if grid is None:
        return np.inf
    per_block, cell, cells = grid
    num_tasks = problem.num_tasks

    # best[k, c]: lowest cost of the blocks so far, ending with k copies, using c cells.
    best = np.full((num_tasks + 1, cells + 1), np.inf)
    best[1:, 0] = 0.0
    for b in range(problem.num_blocks):
        reachable = np.minimum.accumulate(best, axis=0)
        step = np.full_like(best, np.inf)
        for k in range(1, num_tasks + 1):
            shift = int(np.floor(k * per_block[b] / cell))
            if shift <= cells:
                step[k, shift:] = reachable[k, : cells + 1 - shift] + bounds[b, k]
        best = step
    return float(best.min())


def relaxed_block_bounds(problem: SearchProblem, exact_up_to: int = 12) -> np.ndarray:
    """Lower bounds on each block's best cost by copy count: blocks x (tasks + 1).

    Exact (every partition scored through subset tables) for at most
    ``exact_up_to`` tasks; otherwise the largest of three relaxations, see
    :func:`nearest_neighbour_bounds`, :func:`restriction_bounds` and
    :func:`clique_bounds`, with the exact values for one copy and for one copy
    per task.
    """
    d = problem.dissimilarity
    blocks, num_tasks, _ = d.shape
    if num_tasks <= exact_up_to:
        table = partition_sum_table(subset_diameters(d), num_tasks)
        sums = table[:, (1 << num_tasks) - 1, :]
    else:
        sums = np.maximum(nearest_neighbour_bounds(d), restriction_bounds(d))
        sums = np.maximum(sums, clique_bounds(d))
        sums[:, 1] = whole_set_diameters(d)
        sums[:, num_tasks] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = sums / np.arange(num_tasks + 1)[None, :]
    bounds[:, 0] = np.inf
    if d.min() >= 0:
        bounds = monotone_block_bounds(bounds)
    return bounds


def whole_set_diameters(dissimilarity: np.ndarray) -> np.ndarray:
    """Per block, the diameter of the whole task set (0 for a single task)."""
    d = np.asarray(dissimilarity, dtype=np.float64)
    if d.shape[1] < 2:
        return np.zeros(d.shape[0])
    return d.reshape(d.shape[0], -1).max(axis=1)


def nearest_neighbour_bounds(dissimilarity: np.ndarray, grid: int = 800) -> np.ndarray:
    """Lower bounds on the smallest sum of diameters by cluster count: blocks x (tasks + 1).

    A cluster of ``s`` tasks is at least as wide as the distance from any of its
    tasks to that task's ``(s - 1)``-th nearest other task, so at least the
    average of these over its tasks. Summed over clusters, each task ``t`` in a
    cluster of size ``s_t`` pays ``phi_t(s_t)`` (that distance over ``s_t``), and
    ``sum_t 1 / s_t`` is the number of clusters. Letting each task choose its own
    size, with the count enforced by a Lagrange multiplier, bounds from below.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    blocks, num_tasks, _ = d.shape
    sizes = np.arange(1, num_tasks + 1, dtype=np.float64)
    largest = float(np.abs(d).max()) if d.size else 0.0
    top = 2 * max(largest, 1e-12) * num_tasks**2 + 1.0
    multipliers = np.unique(
        np.concatenate([[0.0], np.geomspace(top * 1e-9, top, grid), np.linspace(0, top, grid)])
    )
    counts = np.arange(num_tasks + 1, dtype=np.float64)

    out = np.full((blocks, num_tasks + 1), -np.inf)
    for b in range(blocks):
        others = d[b] + np.diag(np.full(num_tasks, np.inf))
        nearest = np.sort(others, axis=1)[:, : num_tasks - 1]  # (s - 1)-th nearest at s - 2
        phi = np.zeros((num_tasks, num_tasks))
        phi[:, 1:] = nearest / sizes[None, 1:]
        # dual(lambda) = sum_t min_s (phi_t(s) + lambda / s); bound(k) = max dual - lambda k.
        priced = phi[:, :, None] + multipliers[None, None, :] / sizes[None, :, None]
        dual = priced.min(axis=1).sum(axis=0)
        out[b] = (dual[None, :] - multipliers[None, :] * counts[:, None]).max(axis=1)
    return out


def restriction_bounds(
    dissimilarity: np.ndarray, subset_size: int = 12, summed: bool = False
) -> np.ndarray:
    """Lower bounds on the smallest sum of diameters by cluster count: blocks x (tasks + 1).

    Restricting a partition into ``k`` clusters to a subset ``U`` of tasks leaves
    at most ``min(k, |U|)`` clusters, none wider than before, so the best sum for
    ``U`` with at most that many clusters (exact, over all subsets of ``U``) bounds
    the whole. ``U`` is grown by farthest-point selection, which keeps it spread out.
    With ``summed``, the blocks share one partition and each cluster pays its
    diameters summed over the blocks: one row comes back.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    groups = [d] if summed else [d[b : b + 1] for b in range(d.shape[0])]
    num_tasks = d.shape[1]
    size = min(subset_size, num_tasks)
    out = np.full((len(groups), num_tasks + 1), -np.inf)
    for g, group in enumerate(groups):
        total = group.sum(axis=0)
        first, second = np.unravel_index(np.argmax(total), total.shape)
        chosen = [int(first)] if first == second else [int(first), int(second)]
        while len(chosen) < size:
            spread = total[:, chosen].min(axis=1)
            spread[chosen] = -np.inf
            chosen.append(int(np.argmax(spread)))
        diameters = subset_diameters(group[:, chosen][:, :, chosen]).sum(axis=0, keepdims=True)
        sums = partition_sum_table(diameters, size)[0, (1 << size) - 1]
        best_up_to = np.minimum.accumulate(sums[1:])  # best with at most j clusters, j >= 1
        out[g, 1:] = best_up_to[np.minimum(np.arange(1, num_tasks + 1), size) - 1]
    return out


def clique_bounds(dissimilarity: np.ndarray, thresholds: int = 48) -> np.ndarray:
    """Lower bounds on the smallest sum of diameters by cluster count: blocks x (tasks + 1).

    A cluster of ``s`` tasks no wider than ``D`` is a clique of ``s`` tasks in the
    graph joining tasks at most ``D`` apart. A greedy colouring of that graph
    bounds its largest clique from above, so where it needs fewer than ``s``
    colours every cluster of ``s`` tasks is wider than ``D``. With ``h(s)`` the
    widest such ``D``, the sum over clusters is at least the smallest sum of
    ``h`` over the ways of splitting the task count into ``k`` cluster sizes.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    blocks, num_tasks, _ = d.shape
    out = np.full((blocks, num_tasks + 1), -np.inf)
    if num_tasks < 2:
        out[:, 1] = 0.0
        return out
    for b in range(blocks):
        narrowest = _narrowest_cluster(d[b], thresholds)
        out[b] = _best_size_split(narrowest)
    return out


def _narrowest_cluster(d: np.ndarray, thresholds: int) -> np.ndarray:
    """``h[s]``: a lower bound on the diameter of any ``s`` tasks (``h[1] = 0``)."""
    num_tasks = len(d)
    pairs = np.sort(d[np.triu_indices(num_tasks, 1)])
    levels = np.unique(
        np.concatenate([pairs[:thresholds], np.quantile(pairs, np.linspace(0, 1, thresholds))])
    )
    off_diagonal = ~np.eye(num_tasks, dtype=bool)
    colours = np.array([_greedy_colours((d <= level) & off_diagonal) for level in levels])
    # Cliques only grow with the threshold: keep the smallest bound from there upwards.
    colours = np.minimum.accumulate(colours[::-1])[::-1]

    narrowest = np.full(num_tasks + 1, pairs[0])
    narrowest[:2] = 0.0
    for s in range(2, num_tasks + 1):
        below = np.flatnonzero(colours < s)
        if len(below):
            narrowest[s] = max(pairs[0], levels[below[-1]])
    return narrowest


def _greedy_colours(adjacent: np.ndarray) -> int:
    """Colours a greedy colouring in smallest-last order uses (at least the largest clique)."""
    n = len(adjacent)
    degree = adjacent.sum(axis=1)
    removed = np.zeros(n, dtype=bool)
    order = []
    for _ in range(n):
        v = int(np.argmin(np.where(removed, n + 1, degree)))
        order.append(v)
        removed[v] = True
        degree = degree - adjacent[v]
    colour = np.full(n, -1)
    for v in reversed(order):
        taken = colour[adjacent[v] & (colour >= 0)]
        free = np.ones(len(taken) + 1, dtype=bool)
        free[taken[taken <= len(taken)]] = False
        colour[v] = int(np.argmax(free))
    return int(colour.max()) + 1


def _best_size_split(narrowest: np.ndarray) -> np.ndarray:
    """``out[k]``: smallest sum of ``narrowest[s]`` over ``k`` sizes adding up to the task count."""
    num_tasks = len(narrowest) - 1
    best = np.full(num_tasks + 1, np.inf)  # best[n]: with the parts so far summing to n
    best[0] = 0.0
    out = np.full(num_tasks + 1, -np.inf)
    sizes = np.arange(1, num_tasks + 1)
    for k in range(1, num_tasks + 1):
        shifted = np.full((num_tasks + 1, num_tasks), np.inf)
        for i, s in enumerate(sizes):
            shifted[s:, i] = best[: num_tasks + 1 - s] + narrowest[s]
        best = shifted.min(axis=1)
        out[k] = best[num_tasks]
    return out


def run_sum_bounds(
    dissimilarity: np.ndarray, first: int, last: int, exact_up_to: int = 12
) -> np.ndarray:
    """Lower bounds, by cluster count, on the smallest sum over clusters of their diameters
    summed over blocks ``first..last``: the cost of those blocks when they share a partition.

    Exact for at most ``exact_up_to`` tasks; otherwise the largest of the
    relaxations applied to the summed dissimilarity (a cluster's summed
    diameters are at least its diameter under the sum), with the restriction
    bound summing diameters block by block.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)[first : last + 1]
    num_tasks = d.shape[1]
    if num_tasks <= exact_up_to:
        summed = subset_diameters(d).sum(axis=0, keepdims=True)
        return partition_sum_table(summed, num_tasks)[0, (1 << num_tasks) - 1]
    total = d.sum(axis=0, keepdims=True)
    sums = np.maximum(nearest_neighbour_bounds(total), clique_bounds(total))[0]
    sums = np.maximum(sums, restriction_bounds(d, summed=True)[0])
    sums[1] = whole_set_diameters(d).sum()
    sums[num_tasks] = 0.0
    return sums


def run_lower_bound(
    problem: SearchProblem, exact_up_to: int = 12, deadline: float | None = None
) -> float:
    """Lower bound on the best tree's cost, from runs of blocks with equal copy counts.

    Blocks ``a..e`` with equal copy counts hold one partition, which must suit all
    of them at once; a tree's copy counts split its blocks into such maximal runs,
    and its cost is at least the sum of the runs' bounds (:func:`run_sum_bounds`
    over the count). The bound is the smallest such sum over copy counts within
    budget: enumerated when few, else on a budget grid per limit. Like the
    method's ``1 - affinity``, the dissimilarity must have a zero diagonal.

    Args:
        problem: the search problem.
        exact_up_to: up to this many tasks every run's bound is exact.
        deadline: a :func:`time.perf_counter` time after which runs longer than one
            block fall back to the sum of their blocks' bounds (still valid, weaker).
    """
    blocks, num_tasks = problem.num_blocks, problem.num_tasks
    counts = np.arange(num_tasks + 1, dtype=np.float64)
    monotone = problem.dissimilarity.min() >= 0
    runs = {}
    for length in range(1, blocks + 1):
        for a in range(blocks - length + 1):
            e = a + length - 1
            if length > 1 and deadline is not None and time.perf_counter() > deadline:
                runs[a, e] = sum(runs[b, b] for b in range(a, e + 1))
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                means = run_sum_bounds(problem.dissimilarity, a, e, exact_up_to) / counts
            means[0] = np.inf
            runs[a, e] = monotone_block_bounds(means[None])[0] if monotone else means

    if count_copy_vectors(num_tasks, blocks) <= MAX_ENUMERATED_COUNTS:
        rows = feasible_copy_counts(problem)
        return float(_maximal_run_sums(rows, runs).min()) if len(rows) else np.inf
    best = _run_chain_bound(problem, runs, None)
    for name in problem.limits:
        best = max(best, _run_chain_bound(problem, runs, name))
    return best


def _maximal_run_sums(rows: np.ndarray, runs: dict) -> np.ndarray:
    """For each row of copy counts, the sum of its maximal runs' bounds."""
    rows = np.asarray(rows, dtype=np.int64)
    blocks = rows.shape[1]
    starts = np.ones(rows.shape, dtype=bool)
    starts[:, 1:] = rows[:, 1:] != rows[:, :-1]
    ends = np.empty(rows.shape, dtype=np.int64)
    ends[:, -1] = blocks - 1
    for b in range(blocks - 2, -1, -1):
        ends[:, b] = np.where(starts[:, b + 1], b, ends[:, b + 1])
    total = np.zeros(len(rows))
    for a in range(blocks):
        for e in range(a, blocks):
            here = starts[:, a] & (ends[:, a] == e)
            total[here] += runs[a, e][rows[here, a]]
    return total


def _run_chain_bound(problem: SearchProblem, runs: dict, name: str | None) -> float:
    """Smallest sum of run bounds over maximal runs, under one limit on a budget grid."""
    blocks, num_tasks = problem.num_blocks, problem.num_tasks
    grid = (np.zeros(blocks), 1.0, 0) if name is None else _budget_grid(problem, name)
    if grid is None:
        return np.inf
    per_block, cell, cells = grid
    cumulative = np.concatenate([[0.0], np.cumsum(per_block)])

    # ending[e + 1][k, c]: lowest bound of blocks 0..e, block e with k copies, c cells used.
    ending = [np.full((num_tasks + 1, cells + 1), np.inf) for _ in range(blocks + 1)]
    ending[0][0, 0] = 0.0
    for e in range(blocks):
        for a in range(e + 1):
            # Runs are maximal: the run before has strictly fewer copies.
            fewer = np.full((num_tasks + 1, cells + 1), np.inf)
            fewer[1:] = np.minimum.accumulate(ending[a], axis=0)[:-1]
            for k in range(1, num_tasks + 1):
                shift = int(np.floor(k * (cumulative[e + 1] - cumulative[a]) / cell))
                if shift > cells:
                    continue
                candidate = fewer[k, : cells + 1 - shift] + runs[a, e][k]
                target = ending[e + 1][k, shift:]
                np.minimum(target, candidate, out=target)
    return float(ending[blocks].min())
