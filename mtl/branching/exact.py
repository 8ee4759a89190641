"""Exact branch-and-bound search for the cheapest tree within budget.

The search builds the tree block by block, shallowest first, and each block's
partition one part at a time: a cluster of the block above is split by choosing
the part that holds its lowest task, then the part holding the lowest task
left, and so on. Every choice is bounded from below before it is explored, and
the most promising is explored first.

Blocks ``a..e`` with equal copy counts hold the same partition, so the bound
works on runs of blocks. For every run and every subset ``S`` of tasks a table
holds the smallest sum, over partitions of ``S`` into ``j`` clusters, of each
cluster's diameters summed over the run's blocks. Whatever the search decides
later, the clusters still open are split into some number of parts, so a run's
cost is at least a min-plus convolution of the open clusters' table rows at its
copy count, divided by that count. The bound is the smallest sum over the
maximal runs of a copy-count vector, over the vectors within budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mtl.branching.bounds import count_copy_vectors, feasible_copy_counts, within_limits
from mtl.branching.greedy import greedy_tree
from mtl.branching.search import SearchProblem, SearchResult, no_feasible_tree_message
from mtl.branching.subsets import partition_sum_table, split_pairs, subset_diameters
from mtl.branching.tree import BranchedTree, Partition

log = logging.getLogger(__name__)

_TOLERANCE = 1e-12
# Beyond this many copy-count vectors the per-node bound over them gets too slow.
MAX_COPY_COUNTS = 1_000_000
# Convolutions of up to this many entries gather all index pairs at once; larger loop.
_GATHER_LIMIT = 4_000


class _TimeUp(Exception):
    """Raised inside the search when the time limit has passed."""


@lru_cache(maxsize=8)
def _convolution_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, k - i) for a min-plus convolution of length ``n``; ``n`` marks padding."""
    i = np.arange(n)[None, :]
    k = np.arange(n)[:, None]
    return np.broadcast_to(i, (n, n)).copy(), np.where(i <= k, k - i, n)


def min_plus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Min-plus convolution over the last axis, truncated to its length (broadcasts)."""
    n = a.shape[-1]
    size = np.broadcast_shapes(a.shape, b.shape)
    if np.prod(size) <= _GATHER_LIMIT:
        first, second = _convolution_indices(n)
        padded = np.concatenate([b, np.full((*b.shape[:-1], 1), np.inf)], axis=-1)
        return (a[..., first] + padded[..., second]).min(axis=-1)
    out = np.broadcast_to(a[..., :1] + b, size).copy()
    for i in range(1, n):
        np.minimum(out[..., i:], a[..., i : i + 1] + b[..., : n - i], out=out[..., i:])
    return out


@dataclass
class _Incumbent:
    cost: float
    chain: tuple[Partition, ...] | None


@dataclass
class BranchAndBoundOutcome:
    """The best tree a branch and bound found, and what it proved."""

    tree: BranchedTree
    lower_bound: float
    proven_optimal: bool
    nodes: int
    trees_completed: int


def branch_and_bound(
    problem: SearchProblem, deadline: float | None = None, initial: BranchedTree | None = None
) -> BranchAndBoundOutcome:
    """Search for the cheapest tree within budget until proven or ``deadline`` passes.

    Args:
        problem: the search problem; at most about 14 tasks.
        deadline: a :func:`time.perf_counter` time to stop at; ``None`` for none.
        initial: a tree within budget to start from; only cheaper trees are explored.
    """
    total_counts = count_copy_vectors(problem.num_tasks, problem.num_blocks)
    if total_counts > MAX_COPY_COUNTS:
        raise ValueError(
            f"{problem.num_tasks} tasks and {problem.num_blocks} blocks allow {total_counts:,} "
            f"copy-count vectors, more than the exact search's {MAX_COPY_COUNTS:,}: use the "
            "anytime search (search=anytime, or --search anytime), or merge blocks"
        )
    counts = feasible_copy_counts(problem)
    if not len(counts):
        raise ValueError(no_feasible_tree_message(problem))
    if initial is None:
        initial = greedy_tree(problem)
    if not problem.fits(initial.copies_per_block()):
        raise ValueError(
            f"the initial tree uses {problem.resources_of(initial.copies_per_block())}, "
            f"over the limits {problem.limits}"
        )

    search = _BranchAndBound(problem, counts, deadline)
    search.incumbent = _Incumbent(initial.cost(problem.dissimilarity), initial.partitions)
    finished = search.run()

    tree = BranchedTree(problem.tasks, search.incumbent.chain)
    cost = tree.cost(problem.dissimilarity)
    # Unexplored choices all have bounds of at least open_bound; explored ones cost at least
    # the tree kept. Either way the root bound holds too.
    lower_bound = cost if finished else min(cost, max(search.root_bound, search.open_bound))
    proven = finished or lower_bound >= cost - _TOLERANCE
    lower_bound = cost if proven else lower_bound
    # The initial tree was scored too; when the bounds prove it optimal it is the only one.
    scored = search.trees_completed + 1
    return BranchAndBoundOutcome(tree, lower_bound, proven, search.nodes, scored)


class ExactSearch:
    """Branch and bound that proves which tree within budget has the lowest cost.

    Meant for up to about 12 tasks: its tables hold every subset of tasks, so
    memory and set-up time double with each task beyond that, and setting them up
    (about a second for 12 tasks and 6 blocks) is not cut short by the time limit.

    Args:
        time_limit_s: stop after this many seconds and return the best tree found,
            with ``proven_optimal=False`` and a valid lower bound; ``None`` for no limit.
        max_tasks: refuse larger problems (their subset tables would not fit in memory).
    """

    name = "exact"

    def __init__(self, time_limit_s: float | None = 60.0, max_tasks: int = 14) -> None:
        if time_limit_s is not None and time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive or None, got {time_limit_s}")
        self.time_limit_s = time_limit_s
        self.max_tasks = max_tasks

    def __call__(self, problem: SearchProblem) -> SearchResult:
        """The cheapest tree within budget, proven unless the time limit cut the search."""
        start = time.perf_counter()
        if problem.num_tasks > self.max_tasks:
            raise ValueError(
                f"exact search handles at most {self.max_tasks} tasks, got {problem.num_tasks}: "
                "use the anytime search (search=anytime, or --search anytime on the command line)"
            )
        deadline = None if self.time_limit_s is None else start + self.time_limit_s
        outcome = branch_and_bound(problem, deadline)

        tree = outcome.tree
        cost = tree.cost(problem.dissimilarity)
        log.debug(
            "exact search: %d nodes, %d complete trees scored, cost %.6g (lower is better), %s",
            outcome.nodes,
            outcome.trees_completed,
            cost,
            "proven optimal"
            if outcome.proven_optimal
            else f"time limit reached, lower bound {outcome.lower_bound:.6g}",
        )
        return SearchResult(
            tree=tree,
            cost=cost,
            resources=problem.resources_of(tree.copies_per_block()),
            lower_bound=outcome.lower_bound,
            proven_optimal=outcome.proven_optimal,
            trees_evaluated=outcome.trees_completed,
            trees_feasible=outcome.trees_completed,
            seconds=time.perf_counter() - start,
            algorithm=self.name,
        )


@lru_cache(maxsize=2)
def _run_tables(
    dissimilarity: bytes, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subset diameters per block, summed per run of blocks, and the runs' partition tables.

    Cached on the dissimilarity itself: a budget sweep searches one tensor many times.
    """
    d = np.frombuffer(dissimilarity, dtype=np.float64).reshape(shape)
    blocks, num_tasks, _ = shape
    diameters = subset_diameters(d)
    cumulative = np.concatenate([np.zeros((1, diameters.shape[1])), np.cumsum(diameters, axis=0)])
    runs = [(a, e) for a in range(blocks) for e in range(a, blocks)]
    run_diameters = np.stack([cumulative[e + 1] - cumulative[a] for a, e in runs])
    return diameters, run_diameters, partition_sum_table(run_diameters, num_tasks)


@dataclass
class _Level:
    """What the search knows while it partitions one block."""

    block: int
    parent: tuple[int, ...]
    tails: np.ndarray
    row_terms: np.ndarray
    prefix_cost: float
    prefix_counts: tuple[int, ...]
    chain: tuple[tuple[int, ...], ...]


class _BranchAndBound:
    """Depth-first branch and bound over parts, blocks shallowest first.

    Blocks ``a..e`` with equal copy counts hold the same partition, so the bound
    works on runs of blocks: ``table[r, S, j]`` is the smallest sum, over
    partitions of ``S`` into ``j`` clusters, of each cluster's diameters summed
    over the blocks of run ``r``. Runs are ordered by first block, then last, so
    the runs starting at block ``b`` or deeper form a suffix of that order.
    """

    def __init__(self, problem: SearchProblem, counts: np.ndarray, deadline: float | None):
        self.problem = problem
        self.num_tasks = problem.num_tasks
        self.num_blocks = problem.num_blocks
        self.width = self.num_tasks + 1
        self.counts = counts.astype(np.int64)
        self.deadline = deadline

        blocks = self.num_blocks
        self.runs = [(a, e) for a in range(blocks) for e in range(a, blocks)]
        self.run_index = np.full((blocks, blocks), -1, dtype=np.int64)
        for r, (a, e) in enumerate(self.runs):
            self.run_index[a, e] = r
        self.first_run = [self.run_index[b, b] for b in range(blocks)] + [len(self.runs)]
        d = np.ascontiguousarray(problem.dissimilarity, dtype=np.float64)
        self.diameters, self.run_diameters, self.table = _run_tables(d.tobytes(), d.shape)
        self.parts, self.starts, self.ends = split_pairs(self.num_tasks)

        with np.errstate(divide="ignore"):
            self.inverse_counts = 1.0 / np.arange(self.width, dtype=np.float64)
        self.inverse_counts[0] = np.inf
        self.identity = np.full(self.width, np.inf)
        self.identity[0] = 0.0

        # Bounds never rise with more copies when no diameter is negative.
        self.monotone = bool(self.diameters.min() >= 0)
        self.run_can_grow = self._run_can_grow()
        self._rows: dict[tuple[int, ...], np.ndarray] = {(): np.arange(len(self.counts))}
        self._bounding: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

        self.incumbent = _Incumbent(np.inf, None)
        self.open_bound = np.inf
        self.nodes = 0
        self.trees_completed = 0
        self.root_bound = self._root_bound()

    # Copy counts -------------------------------------------------------------------------

    def _run_ends(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row and block: whether a run of equal counts starts there, and where it ends."""
        starts = np.ones(counts.shape, dtype=bool)
        starts[:, 1:] = counts[:, 1:] != counts[:, :-1]
        ends = np.empty(counts.shape, dtype=np.int64)
        ends[:, -1] = counts.shape[1] - 1
        for level in range(counts.shape[1] - 2, -1, -1):
            ends[:, level] = np.where(starts[:, level + 1], level, ends[:, level + 1])
        return starts, ends

    def _run_can_grow(self) -> np.ndarray:
        """``grow[r, b]``: the run of equal counts holding block ``b`` could take one more copy.

        One more copy means every block of the run gains a copy while the run stays
        below the next one and the counts stay within budget.
        """
        counts, blocks = self.counts, self.num_blocks
        grow = np.zeros(counts.shape, dtype=bool)
        if not self.monotone:
            return grow
        starts, ends = self._run_ends(counts)
        levels = np.arange(blocks)
        for a in range(blocks):
            end = ends[:, a]
            in_run = (levels[None, :] >= a) & (levels[None, :] <= end[:, None])
            grown = counts + in_run
            top = grown[np.arange(len(counts)), end]
            below_next = np.ones(len(counts), dtype=bool)
            has_next = end + 1 < blocks
            below_next[has_next] = top[has_next] < counts[has_next, end[has_next] + 1]
            ok = starts[:, a] & (top <= self.num_tasks) & below_next
            ok[ok] = within_limits(self.problem, grown[ok])
            grow |= in_run & ok[:, None]
        return grow

    def rows(self, prefix: tuple[int, ...]) -> np.ndarray:
        """Indices of the feasible copy counts that start with ``prefix``."""
        if prefix not in self._rows:
            above = self.rows(prefix[:-1])
            keep = self.counts[above, len(prefix) - 1] == prefix[-1]
            self._rows[prefix] = above[keep]
        return self._rows[prefix]

    def bounding_rows(self, prefix: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Copy counts with this prefix that can attain the smallest bound, and their terms.

        A row's bound is a sum of one term per run of equal counts from block
        ``b = len(prefix)`` on; ``terms[i, p]`` indexes the flattened
        (run - first run of b, count) table of the ``p``-th run start, or the
        trailing zero column. Rows where a run after the one holding block ``b``
        could gain a copy are dropped: the gain never raises the bound.
        """
        if prefix in self._bounding:
            return self._bounding[prefix]
        b = len(prefix)
        rows = self.rows(prefix)
        tail = self.counts[rows, b:]
        if self.monotone:
            later = self.run_can_grow[rows, b + 1 :] & (tail[:, 1:] != tail[:, :1])
            rows, tail = rows[~later.any(axis=1)], tail[~later.any(axis=1)]
        starts, ends = self._run_ends(tail)
        runs = self.run_index[b + np.arange(tail.shape[1])[None, :], b + ends] - self.first_run[b]
        dummy = (len(self.runs) - self.first_run[b]) * self.width
        terms = np.where(starts, runs * self.width + tail, dummy)
        self._bounding[prefix] = (rows, terms)
        return rows, terms

    def _root_bound(self) -> float:
        """The bound before any decision: every run's table for the whole task set."""
        rows, terms = self.bounding_rows(())
        if not len(rows):
            return np.inf
        everyone = (1 << self.num_tasks) - 1
        flat = np.append((self.table[:, everyone] * self.inverse_counts).ravel(), 0.0)
        return float(flat[terms].sum(axis=1).min())

    # Search ------------------------------------------------------------------------------

    def run(self) -> bool:
        """Search until done (True) or out of time (False)."""
        everyone = (1 << self.num_tasks) - 1
        try:
            self.block(0, (everyone,), 0.0, (), ())
        except _TimeUp:
            if self.nodes <= 1:  # stopped before the first choice: nothing is explored
                self.open_bound = self.root_bound
            return False
        return True

    def check_time(self) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _TimeUp

    def block(
        self,
        b: int,
        parent: tuple[int, ...],
        prefix_cost: float,
        prefix_counts: tuple[int, ...],
        chain: tuple[tuple[int, ...], ...],
    ) -> None:
        """Start the partition of block ``b``, whose clusters split those of ``parent``."""
        rows, terms = self.bounding_rows(prefix_counts)
        if not len(rows):
            return
        runs = self.table[self.first_run[b] :]
        # tails[i, r]: min-plus convolution over parent clusters i.. of run r's table.
        tails = np.empty((len(parent) + 1, len(runs), self.width))
        tails[-1] = self.identity
        for i in range(len(parent) - 1, -1, -1):
            tails[i] = min_plus(runs[:, parent[i]], tails[i + 1])
        deeper = len(self.runs) - self.first_run[b + 1]
        committed = np.broadcast_to(self.identity, (deeper, self.width))
        level = _Level(b, parent, tails, terms, prefix_cost, prefix_counts, chain)
        self.split(level, 0, parent[0], (), np.zeros(self.num_blocks - b), committed)

    def split(
        self,
        level: _Level,
        i: int,
        remaining: int,
        parts: tuple[int, ...],
        part_sums: np.ndarray,
        committed: np.ndarray,
    ) -> None:
        """Choose the next part of parent cluster ``i``, of which ``remaining`` is left.

        Args:
            part_sums: for each run from block ``b`` to block ``e``, the committed
                parts' diameters summed over the run.
            committed: for each run starting below block ``b``, the min-plus
                convolution of the committed parts' tables.
        """
        self.nodes += 1
        self.check_time()
        b, width = level.block, self.width
        first, first_deeper = self.first_run[b], self.first_run[b + 1]
        same = first_deeper - first
        candidates = self.parts[self.starts[remaining] : self.ends[remaining]]
        rests = remaining ^ candidates
        copies = len(parts) + 1

        # What stays open after a candidate: its rest and the parent clusters not yet split.
        open_runs = min_plus(self.table[first:, rests], level.tails[i + 1][:, None, :])
        terms = np.zeros((len(candidates), len(self.runs) - first, width))

        # Runs starting at block b hold this block's partition: the parts, the
        # candidate, and whatever the open clusters split into.
        sums = part_sums[:, None] + self.run_diameters[first:first_deeper][:, candidates]
        same_terms = np.full((same, len(candidates), width), np.inf)
        same_terms[:, :, copies:] = sums[:, :, None] + open_runs[:same, :, : width - copies]
        terms[:, :same] = (same_terms * self.inverse_counts).transpose(1, 0, 2)

        # Runs starting deeper split every part of block b at least optimally.
        if first_deeper < len(self.runs):
            inside = min_plus(committed[:, None, :], self.table[first_deeper:, candidates])
            deeper = min_plus(inside, open_runs[same:]) * self.inverse_counts
            terms[:, same:] = deeper.transpose(1, 0, 2)

        flat = np.concatenate(
            [terms.reshape(len(candidates), -1), np.zeros((len(candidates), 1))], axis=1
        )
        totals = flat[:, level.row_terms[:, 0]]
        for p in range(1, level.row_terms.shape[1]):
            totals += flat[:, level.row_terms[:, p]]
        bounds = level.prefix_cost + totals.min(axis=1)

        order = np.argsort(bounds, kind="stable")
        last_cluster = i + 1 == len(level.parent)
        for position, index in enumerate(order):
            if bounds[index] >= self.incumbent.cost - _TOLERANCE:
                return
            try:
                self.descend(
                    level,
                    i,
                    int(candidates[index]),
                    int(rests[index]),
                    parts,
                    part_sums,
                    committed,
                    last_cluster,
                )
            except _TimeUp:
                self.open_bound = min(self.open_bound, float(bounds[order[position:]].min()))
                raise

    def descend(
        self,
        level: _Level,
        i: int,
        part: int,
        rest: int,
        parts: tuple[int, ...],
        part_sums: np.ndarray,
        committed: np.ndarray,
        last_cluster: bool,
    ) -> None:
        """Commit ``part`` to block ``level.block`` and continue the search below it."""
        b = level.block
        first, first_deeper = self.first_run[b], self.first_run[b + 1]
        parts = (*parts, part)
        part_sums = part_sums + self.run_diameters[first:first_deeper, part]
        if rest or not last_cluster:
            committed = min_plus(committed, self.table[first_deeper:, part])
            if rest:
                self.split(level, i, rest, parts, part_sums, committed)
            else:
                self.split(level, i + 1, level.parent[i + 1], parts, part_sums, committed)
            return

        cost = level.prefix_cost + float(part_sums[0]) / len(parts)
        chain = (*level.chain, parts)
        if b + 1 < self.num_blocks:
            self.block(b + 1, parts, cost, (*level.prefix_counts, len(parts)), chain)
            return
        self.trees_completed += 1
        if cost < self.incumbent.cost - _TOLERANCE:
            self.incumbent = _Incumbent(cost, tuple(self.to_partition(p) for p in chain))

    def to_partition(self, masks: tuple[int, ...]) -> Partition:
        """Bit masks of clusters to a partition of task indices."""
        return tuple(tuple(t for t in range(self.num_tasks) if m >> t & 1) for m in masks)
