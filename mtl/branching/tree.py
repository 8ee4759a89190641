"""A branched network as a chain of task partitions, one per encoder block.

Block ``b`` of the encoder exists once per cluster of the partition ``P_b``;
the tasks of a cluster share that copy. Every partition refines the one
before it, so once two tasks part they never share a block again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Cluster = tuple[int, ...]
Partition = tuple[Cluster, ...]


def canonical_partition(clusters: Iterable[Iterable[int]]) -> Partition:
    """Sort tasks inside each cluster and clusters by their first task."""
    sorted_clusters = [tuple(sorted(int(t) for t in c)) for c in clusters]
    return tuple(sorted((c for c in sorted_clusters if c), key=lambda c: c[0]))


def refines(fine: Partition, coarse: Partition) -> bool:
    """True when every cluster of ``fine`` lies inside one cluster of ``coarse``."""
    owner = {t: i for i, cluster in enumerate(coarse) for t in cluster}
    return all(len({owner[t] for t in cluster}) == 1 for cluster in fine)


def cluster_cost(cluster: Cluster, dissimilarity: np.ndarray) -> float:
    """Complete linkage: the largest dissimilarity between two tasks of the cluster."""
    if len(cluster) < 2:
        return 0.0
    idx = np.asarray(cluster)
    return float(dissimilarity[np.ix_(idx, idx)].max())


def partition_cost(partition: Partition, dissimilarity: np.ndarray) -> float:
    """Mean complete-linkage dissimilarity over the clusters of one block."""
    return float(np.mean([cluster_cost(c, dissimilarity) for c in partition]))


@dataclass(frozen=True)
class BranchedTree:
    """Tasks and, for every encoder block, the partition of tasks sharing it.

    Args:
        tasks: task names, in the order used by index-based partitions.
        partitions: one partition per block, shallowest first.
    """

    tasks: tuple[str, ...]
    partitions: tuple[Partition, ...]

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        partitions = tuple(canonical_partition(p) for p in self.partitions)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "partitions", partitions)
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"task names must be unique, got {list(tasks)}")
        if not partitions:
            raise ValueError("a tree needs at least one block")
        everyone = list(range(len(tasks)))
        for b, partition in enumerate(partitions):
            members = sorted(t for c in partition for t in c)
            if members != everyone:
                raise ValueError(
                    f"block {b + 1} partition {self._names(partition)} must hold every task "
                    f"{list(tasks)} exactly once"
                )
            if b and not refines(partition, partitions[b - 1]):
                raise ValueError(
                    f"block {b + 1} partition {self._names(partition)} does not refine block "
                    f"{b} partition {self._names(partitions[b - 1])}: tasks that parted "
                    "cannot share a deeper block"
                )

    # Constructors ---------------------------------------------------------------------------

    @classmethod
    def shared(cls, tasks: Sequence[str], num_blocks: int) -> BranchedTree:
        """Every block shared by all tasks (the smallest tree)."""
        everyone = (tuple(range(len(tasks))),)
        return cls(tuple(tasks), (everyone,) * num_blocks)

    @classmethod
    def separate(cls, tasks: Sequence[str], num_blocks: int) -> BranchedTree:
        """One network per task (the largest tree)."""
        singletons = tuple((t,) for t in range(len(tasks)))
        return cls(tuple(tasks), (singletons,) * num_blocks)

    @classmethod
    def from_assignment(cls, tasks: Sequence[str], assignment: np.ndarray) -> BranchedTree:
        """Build from a blocks x tasks matrix whose entry names the block copy a task uses."""
        assignment = np.asarray(assignment)
        if assignment.ndim != 2 or assignment.shape[1] != len(tasks):
            raise ValueError(
                f"assignment must have shape (blocks, {len(tasks)}), got {assignment.shape}"
            )
        partitions = []
        for row in assignment:
            groups: dict[int, list[int]] = {}
            for t, copy in enumerate(row):
                groups.setdefault(int(copy), []).append(t)
            partitions.append(canonical_partition(groups.values()))
        return cls(tuple(tasks), tuple(partitions))

    @classmethod
    def from_dict(cls, data: dict) -> BranchedTree:
        """Inverse of :meth:`to_dict`: clusters are given by task name.

        ``data`` holds ``tasks`` (a list of names) and ``blocks`` (per block, a list of
        clusters, each a list of task names), as ``tree.yaml`` does; other keys are ignored.
        """
        form = (
            "tasks: [a, b, c] and blocks: [[[a, b, c]], [[a, b], [c]], ...] (one entry per block)"
        )
        if not isinstance(data, Mapping) or "tasks" not in data or "blocks" not in data:
            raise ValueError(f"a tree needs {form}; got {data!r}")
        blocks = data["blocks"]
        well_formed = isinstance(blocks, Sequence) and not isinstance(blocks, str)
        well_formed = well_formed and all(
            isinstance(block, Sequence)
            and not isinstance(block, str)
            and all(
                isinstance(c, Sequence)
                and not isinstance(c, str)
                and all(isinstance(n, str) for n in c)
                for c in block
            )
            for block in blocks
        )
        if not well_formed:
            raise ValueError(
                f"a tree's blocks must be lists of clusters of task names: {form}; "
                f"got blocks {blocks!r}"
            )
        tasks = tuple(data["tasks"])
        index = {name: i for i, name in enumerate(tasks)}
        unknown = {n for block in data["blocks"] for c in block for n in c} - set(index)
        if unknown:
            raise ValueError(
                f"tree names unknown tasks {sorted(unknown)}; tasks are {list(tasks)}"
            )
        partitions = tuple(
            canonical_partition([index[n] for n in c] for c in block) for block in data["blocks"]
        )
        return cls(tasks, partitions)

    # Queries --------------------------------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        return len(self.partitions)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def copies_per_block(self) -> list[int]:
        """How many copies of each block the tree holds (|P_b|)."""
        return [len(p) for p in self.partitions]

    def assignment(self) -> np.ndarray:
        """The blocks x tasks matrix of block-copy indices."""
        out = np.empty((self.num_blocks, self.num_tasks), dtype=np.int64)
        for b, partition in enumerate(self.partitions):
            for c, cluster in enumerate(partition):
                out[b, list(cluster)] = c
        return out

    def parent(self, block: int, cluster: int) -> int | None:
        """Index of the cluster in the previous block that feeds this cluster."""
        if block == 0:
            return None
        first_task = self.partitions[block][cluster][0]
        previous = self.partitions[block - 1]
        return next(i for i, c in enumerate(previous) if first_task in c)

    def cost(self, dissimilarity: np.ndarray) -> float:
        """Task-dissimilarity cost (lower is better).

        Sum over blocks of the mean, over that block's clusters, of the largest
        dissimilarity between two tasks of the cluster.

        Args:
            dissimilarity: blocks x tasks x tasks array, ``1 - affinity``.
        """
        dissimilarity = np.asarray(dissimilarity, dtype=np.float64)
        expected = (self.num_blocks, self.num_tasks, self.num_tasks)
        if dissimilarity.shape != expected:
            raise ValueError(
                f"dissimilarity must have shape {expected}, got {dissimilarity.shape}"
            )
        return float(sum(partition_cost(p, d) for p, d in zip(self.partitions, dissimilarity)))

    def resources(self, per_block: Sequence[float], fixed: float = 0.0) -> float:
        """Total of a per-copy block resource (parameters, FLOPs) plus a fixed part (heads)."""
        per_block = list(per_block)
        if len(per_block) != self.num_blocks:
            raise ValueError(f"need one value per block ({self.num_blocks}), got {len(per_block)}")
        return float(fixed + sum(n * r for n, r in zip(self.copies_per_block(), per_block)))

    # Presentation ---------------------------------------------------------------------------

    def _names(self, partition: Partition) -> list[list[str]]:
        return [[self.tasks[t] for t in c] for c in partition]

    def to_dict(self) -> dict:
        """Plain data: task names and, per block, its clusters as lists of task names."""
        return {"tasks": list(self.tasks), "blocks": [self._names(p) for p in self.partitions]}

    def describe(self) -> str:
        """One line per block: ``block 2: {seg, depth} {normals}``."""
        lines = []
        for b, partition in enumerate(self.partitions):
            clusters = " ".join("{" + ", ".join(c) + "}" for c in self._names(partition))
            lines.append(f"block {b + 1}: {clusters}")
        return "\n".join(lines)
