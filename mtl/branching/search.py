"""Budget-constrained search for the branched network of lowest task-dissimilarity cost."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mtl.branching.tree import BranchedTree, Partition, canonical_partition, partition_cost

log = logging.getLogger(__name__)


@dataclass
class SearchProblem:
    """Everything a search needs, in absolute units.

    Args:
        tasks: task names.
        dissimilarity: blocks x tasks x tasks, symmetric, zero diagonal, finite.
        block_resources: per resource name (``"params"``, ``"flops"``), the amount one
            copy of each block costs, shape (blocks,).
        fixed_resources: per resource name, the part every tree pays (task heads).
        limits: per resource name, the largest total a tree may use. Resources without
            a limit are still reported.
    """

    tasks: tuple[str, ...]
    dissimilarity: np.ndarray
    block_resources: dict[str, np.ndarray]
    fixed_resources: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        self.dissimilarity = validate_dissimilarity(self.dissimilarity, len(self.tasks))
        blocks = self.dissimilarity.shape[0]
        resources = {}
        for name, values in self.block_resources.items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (blocks,):
                raise ValueError(
                    f"block_resources[{name!r}] must have one value per block ({blocks}), "
                    f"got shape {values.shape}"
                )
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"block_resources[{name!r}] must be finite and >= 0: {values}")
            resources[name] = values
        self.block_resources = resources
        unknown = (set(self.limits) | set(self.fixed_resources)) - set(resources)
        if unknown:
            raise ValueError(
                f"limits/fixed resources {sorted(unknown)} have no per-block amounts; "
                f"known resources: {sorted(resources)}"
            )

    @property
    def num_blocks(self) -> int:
        return self.dissimilarity.shape[0]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def resources_of(self, copies_per_block: Sequence[int]) -> dict[str, float]:
        """Totals of every resource for a tree with these block-copy counts."""
        copies = np.asarray(copies_per_block, dtype=np.float64)
        return {
            name: float(self.fixed_resources.get(name, 0.0) + copies @ per_block)
            for name, per_block in self.block_resources.items()
        }

    def fits(self, copies_per_block: Sequence[int]) -> bool:
        """Whether a tree with these block-copy counts is within every limit."""
        totals = self.resources_of(copies_per_block)
        return all(totals[name] <= limit * (1 + 1e-12) for name, limit in self.limits.items())


@dataclass
class SearchResult:
    """The chosen tree and how it was found.

    ``lower_bound`` is a proven lower bound on the optimal cost; it equals ``cost``
    when ``proven_optimal`` is true.
    """

    tree: BranchedTree
    cost: float
    resources: dict[str, float]
    lower_bound: float
    proven_optimal: bool
    trees_evaluated: int
    trees_feasible: int
    seconds: float
    algorithm: str

    def to_dict(self) -> dict:
        return {
            "algorithm": self.algorithm,
            "cost": self.cost,
            "cost_direction": "lower is better",
            "lower_bound": self.lower_bound,
            "proven_optimal": self.proven_optimal,
            "resources": self.resources,
            "trees_evaluated": self.trees_evaluated,
            "trees_feasible": self.trees_feasible,
            "seconds": self.seconds,
            **self.tree.to_dict(),
        }


def validate_dissimilarity(dissimilarity: np.ndarray, num_tasks: int | None = None) -> np.ndarray:
    """Check a blocks x tasks x tasks dissimilarity tensor and return it as float64."""
    d = np.asarray(dissimilarity, dtype=np.float64)
    if d.ndim != 3 or d.shape[1] != d.shape[2]:
        raise ValueError(f"dissimilarity must have shape (blocks, tasks, tasks), got {d.shape}")
    if num_tasks is not None and d.shape[1] != num_tasks:
        raise ValueError(f"dissimilarity covers {d.shape[1]} tasks, but {num_tasks} were named")
    if not np.all(np.isfinite(d)):
        bad = np.argwhere(~np.isfinite(d))[0].tolist()
        raise ValueError(f"dissimilarity holds NaN or infinite values, first at index {bad}")
    if not np.allclose(d, d.transpose(0, 2, 1), atol=1e-8):
        b, s, t = np.unravel_index(np.argmax(np.abs(d - d.transpose(0, 2, 1))), d.shape)
        raise ValueError(
            f"dissimilarity must be symmetric: [{b},{s},{t}]={d[b, s, t]:.6g} "
            f"but [{b},{t},{s}]={d[b, t, s]:.6g}"
        )
    return d


def set_partitions(items: Sequence[int]) -> Iterator[Partition]:
    """Every partition of ``items`` (Bell-number many), in canonical form."""
    items = list(items)
    if not items:
        yield ()
        return
    first, rest = items[0], items[1:]
    for partial in set_partitions(rest):
        yield canonical_partition(((first,), *partial))
        for i in range(len(partial)):
            grown = list(partial)
            grown[i] = (first, *grown[i])
            yield canonical_partition(grown)


def refinements(partition: Partition) -> Iterator[Partition]:
    """Every partition that refines ``partition`` (each cluster split independently)."""

    def expand(i: int, chosen: tuple) -> Iterator[Partition]:
        if i == len(partition):
            yield canonical_partition(chosen)
            return
        for split in set_partitions(partition[i]):
            yield from expand(i + 1, chosen + split)

    yield from expand(0, ())


def enumerate_chains(num_tasks: int, num_blocks: int) -> Iterator[tuple[Partition, ...]]:
    """Every branched tree over ``num_tasks`` tasks and ``num_blocks`` blocks."""

    def extend(chain: tuple[Partition, ...]) -> Iterator[tuple[Partition, ...]]:
        if len(chain) == num_blocks:
            yield chain
            return
        for nxt in refinements(chain[-1]):
            yield from extend((*chain, nxt))

    for first in set_partitions(range(num_tasks)):
        yield from extend((first,))


class ExhaustiveSearch:
    """Score every tree and keep the cheapest one within budget.

    This is the paper's procedure and the reference other searches are tested
    against. The number of trees grows faster than exponentially: it is practical
    up to about 6 tasks and 5 blocks.
    """

    name = "exhaustive"

    def __init__(self, max_trees: int = 2_000_000) -> None:
        self.max_trees = max_trees

    def __call__(self, problem: SearchProblem) -> SearchResult:
        start = time.perf_counter()
        block_cost_cache: dict[tuple[int, Partition], float] = {}
        best: tuple[float, tuple[Partition, ...]] | None = None
        evaluated = feasible = 0

        for chain in enumerate_chains(problem.num_tasks, problem.num_blocks):
            evaluated += 1
            if evaluated > self.max_trees:
                raise RuntimeError(
                    f"more than {self.max_trees} trees for {problem.num_tasks} tasks and "
                    f"{problem.num_blocks} blocks: use an exact or anytime search instead"
                )
            if not problem.fits([len(p) for p in chain]):
                continue
            feasible += 1
            cost = 0.0
            for b, partition in enumerate(chain):
                key = (b, partition)
                if key not in block_cost_cache:
                    block_cost_cache[key] = partition_cost(partition, problem.dissimilarity[b])
                cost += block_cost_cache[key]
            if best is None or cost < best[0] - 1e-12:
                best = (cost, chain)

        if best is None:
            raise ValueError(no_feasible_tree_message(problem))
        cost, chain = best
        tree = BranchedTree(problem.tasks, chain)
        return SearchResult(
            tree=tree,
            cost=cost,
            resources=problem.resources_of(tree.copies_per_block()),
            lower_bound=cost,
            proven_optimal=True,
            trees_evaluated=evaluated,
            trees_feasible=feasible,
            seconds=time.perf_counter() - start,
            algorithm=self.name,
        )


def no_feasible_tree_message(problem: SearchProblem) -> str:
    """Explain an empty feasible set with the smallest tree's needs."""
    smallest = problem.resources_of([1] * problem.num_blocks)
    parts = [
        f"{name} limit {limit:,.0f} < smallest tree's {smallest[name]:,.0f}"
        for name, limit in problem.limits.items()
        if smallest[name] > limit
    ]
    return "no tree fits the budget: " + ("; ".join(parts) or "limits exclude every tree")
