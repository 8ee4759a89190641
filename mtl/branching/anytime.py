"""Anytime search for many tasks: a feasible tree at once, better ones with time, and a bound.

The search starts from the greedy tree of :mod:`mtl.branching.greedy` and
improves it by simulated annealing over moves that keep every partition
refining the one above it:

- a group (one task, or a task's cluster in some block ``g``, which keeps its
  own structure from ``g`` down) follows another task's path from where their
  paths part down to some block and has its own copies below that, down to
  ``g``; every end block is tried and the cheapest within budget taken. Following
  itself, the group splits off below some block;
- two clusters of a block that hang from the same cluster above merge;
- a cluster splits in two along the clusters below it.

Most moves must keep the tree within every limit. A compound move may first
leave the budget and is then paired with the best of a few merges or group
moves that return within it; the pair is taken or undone together, which lets
copies move between blocks. The lower bound comes from
:func:`mtl.branching.bounds.run_lower_bound`. For problems small enough for
:class:`mtl.branching.exact.ExactSearch`, the time left after annealing goes to
its branch and bound, started from the best tree found, which can prove the
tree optimal or raise the bound.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np

from mtl.branching.bounds import run_lower_bound
from mtl.branching.exact import branch_and_bound
from mtl.branching.greedy import greedy_tree
from mtl.branching.search import SearchProblem, SearchResult, no_feasible_tree_message
from mtl.branching.tree import BranchedTree

log = logging.getLogger(__name__)


class AnytimeSearch:
    """Simulated annealing over trees within budget, with a lower bound on the best cost.

    Returns a tree within every limit, its cost, and a lower bound on the best
    possible cost, so the gap is known. With many tasks the bound comes from
    relaxations and the gap can stay wide even when the tree is optimal.

    Args:
        time_limit_s: seconds to spend in total (bound and set-up included).
        seed: seed of the random moves.
        prove_up_to_tasks: for at most this many tasks, spend the time left after
            annealing on exact branch and bound; 0 never does.
        anneal_share: share of the time given to annealing when branch and bound follows.
    """

    name = "anytime"

    def __init__(
        self,
        time_limit_s: float = 30.0,
        seed: int = 0,
        prove_up_to_tasks: int = 12,
        anneal_share: float = 0.3,
    ) -> None:
        if time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        if not 0 < anneal_share <= 1:
            raise ValueError(f"anneal_share must be in (0, 1], got {anneal_share}")
        self.time_limit_s = time_limit_s
        self.seed = seed
        self.prove_up_to_tasks = prove_up_to_tasks
        self.anneal_share = anneal_share

    def __call__(self, problem: SearchProblem) -> SearchResult:
        """The best tree found within the time limit, with a lower bound on the best cost."""
        start = time.perf_counter()
        deadline = start + self.time_limit_s
        if not problem.fits([1] * problem.num_blocks):
            raise ValueError(no_feasible_tree_message(problem))

        prove = problem.num_tasks <= self.prove_up_to_tasks
        # Longer runs of blocks tighten the bound but cost time: a quarter at most.
        bound_until = start + 0.25 * self.time_limit_s
        bound = -np.inf if prove else run_lower_bound(problem, deadline=bound_until)
        tree = greedy_tree(problem)
        anneal_until = start + self.time_limit_s * (self.anneal_share if prove else 1.0)
        annealer = _Annealer(problem, tree, np.random.default_rng(self.seed))
        tree = annealer.run(anneal_until, stop_at=bound)
        cost = tree.cost(problem.dissimilarity)

        proven = cost <= bound + 1e-12
        if prove and not proven:
            outcome = branch_and_bound(problem, deadline, initial=tree)
            tree, cost, bound = (
                outcome.tree,
                outcome.tree.cost(problem.dissimilarity),
                outcome.lower_bound,
            )
            proven = outcome.proven_optimal
        if not problem.fits(tree.copies_per_block()):
            raise RuntimeError(f"anytime search left the budget with {tree.copies_per_block()}")
        bound = min(bound, cost)
        proven = proven or cost <= bound + 1e-12
        log.debug(
            "anytime search: cost %.6g (lower is better), lower bound %.6g, gap %.3g%%, "
            "%d moves tried",
            cost,
            bound,
            100 * (cost - bound) / max(cost, 1e-300),
            annealer.moves_tried,
        )
        return SearchResult(
            tree=tree,
            cost=cost,
            resources=problem.resources_of(tree.copies_per_block()),
            lower_bound=cost if proven else bound,
            proven_optimal=proven,
            trees_evaluated=annealer.moves_tried,
            trees_feasible=annealer.moves_feasible,
            seconds=time.perf_counter() - start,
            algorithm=self.name,
        )


class _Tree:
    """A mutable tree with per-block sums of diameters and copy counts kept up to date.

    ``label[b, t]`` names the copy of block ``b`` that task ``t`` uses; names are
    unique within a block but otherwise arbitrary.
    """

    def __init__(self, problem: SearchProblem, assignment: np.ndarray) -> None:
        self.d = problem.dissimilarity
        self.num_blocks, self.num_tasks = assignment.shape
        self.label = np.asarray(assignment, dtype=np.int64).copy()
        self.members: list[dict[int, list[int]]] = []
        self.diameter: list[dict[int, float]] = []
        for b in range(self.num_blocks):
            groups: dict[int, list[int]] = {}
            for t, c in enumerate(self.label[b]):
                groups.setdefault(int(c), []).append(t)
            self.members.append(groups)
            self.diameter.append({c: self.diameter_of(b, m) for c, m in groups.items()})
        self.sums = np.array([sum(diams.values()) for diams in self.diameter])
        self.copies = np.array([len(groups) for groups in self.members], dtype=np.float64)
        self.next_label = int(self.label.max()) + 1
        self.zero_diagonal = not np.any(np.diagonal(self.d, axis1=1, axis2=2))

        names = list(problem.limits)
        self.per_block = np.array([problem.block_resources[n] for n in names]).reshape(
            len(names), self.num_blocks
        )
        fixed = np.array([problem.fixed_resources.get(n, 0.0) for n in names])
        self.room = np.array([problem.limits[n] for n in names]) * (1 + 1e-12) - fixed

    def diameter_of(self, b: int, tasks: list[int]) -> float:
        """Complete-linkage diameter of a set of tasks in block ``b`` (0 for one task)."""
        if len(tasks) < 2:
            return 0.0
        idx = np.asarray(tasks)
        return float(self.d[b][np.ix_(idx, idx)].max())

    def cost(self) -> float:
        """Sum over blocks of the mean diameter (lower is better)."""
        return float((self.sums / self.copies).sum())

    def cost_change(self, sums: np.ndarray, copies: np.ndarray) -> np.ndarray:
        """Change of each block's mean for these changes of its sum and copy count."""
        return (self.sums + sums) / (self.copies + copies) - self.sums / self.copies

    def fits(self, copies: np.ndarray) -> bool:
        """Whether adding ``copies`` (per block, or options x blocks) stays within budget."""
        used = self.per_block @ self.copies
        return bool(np.all(used + self.per_block @ copies <= self.room))

    def fitting(self, copies: np.ndarray) -> np.ndarray:
        """Mask over options x blocks of copy changes that stay within budget."""
        used = self.per_block @ self.copies
        return np.all(used[:, None] + self.per_block @ copies.T <= self.room[:, None], axis=0)

    def over_budget(self) -> bool:
        return bool(np.any(self.per_block @ self.copies > self.room))

    def assignment(self) -> np.ndarray:
        return self.label.copy()

    def snapshot(self) -> tuple:
        """Everything an edit changes, to undo it with :meth:`restore`."""
        return (
            self.label.copy(),
            [{c: list(m) for c, m in groups.items()} for groups in self.members],
            [dict(diams) for diams in self.diameter],
            self.sums.copy(),
            self.copies.copy(),
        )

    def restore(self, saved: tuple) -> None:
        self.label, self.members, self.diameter, self.sums, self.copies = saved

    # Edits -------------------------------------------------------------------------------

    def joined_diameter(
        self, b: int, cluster: list[int], diameter: float, group: list[int], own: float
    ) -> float:
        """Diameter of ``cluster`` (of ``diameter``) joined by ``group`` (of diameter ``own``)."""
        if not self.zero_diagonal:
            return self.diameter_of(b, [*cluster, *group])
        cross = float(self.d[b][np.ix_(group, cluster)].max())
        return max(diameter, own, cross)

    def remove(self, b: int, tasks: list[int], new_diameter: float) -> None:
        """Take ``tasks`` out of their cluster in block ``b``, which is left this wide."""
        c = int(self.label[b, tasks[0]])
        leaving = set(tasks)
        remaining = [s for s in self.members[b][c] if s not in leaving]
        self.sums[b] += new_diameter - self.diameter[b][c]
        if remaining:
            self.members[b][c], self.diameter[b][c] = remaining, new_diameter
        else:
            del self.members[b][c], self.diameter[b][c]
            self.copies[b] -= 1

    def add(self, b: int, tasks: list[int], c: int | None, new_diameter: float) -> None:
        """Put ``tasks`` into cluster ``c`` of block ``b`` (a new one for ``None``)."""
        if c is None:
            c = self.next_label
            self.next_label += 1
            self.members[b][c], self.diameter[b][c] = [], 0.0
            self.copies[b] += 1
        self.members[b][c].extend(tasks)
        self.sums[b] += new_diameter - self.diameter[b][c]
        self.diameter[b][c] = new_diameter
        self.label[b, tasks] = c

    def merge(self, b: int, keep: int, gone: int, new_diameter: float) -> None:
        moved = self.members[b].pop(gone)
        self.sums[b] += new_diameter - self.diameter[b][keep] - self.diameter[b].pop(gone)
        self.members[b][keep].extend(moved)
        self.diameter[b][keep] = new_diameter
        self.label[b, moved] = keep
        self.copies[b] -= 1

    def split(
        self, b: int, c: int, leaving: list[int], stay_diameter: float, leave_diameter: float
    ) -> None:
        new = self.next_label
        self.next_label += 1
        leaving_set = set(leaving)
        self.members[b][c] = [t for t in self.members[b][c] if t not in leaving_set]
        self.members[b][new] = list(leaving)
        self.sums[b] += stay_diameter + leave_diameter - self.diameter[b][c]
        self.diameter[b][c], self.diameter[b][new] = stay_diameter, leave_diameter
        self.label[b, leaving] = new
        self.copies[b] += 1


class _Annealer:
    """Simulated annealing over the moves described in the module docstring."""

    def __init__(self, problem: SearchProblem, start: BranchedTree, rng: np.random.Generator):
        self.problem = problem
        self.rng = rng
        self.tree = _Tree(problem, start.assignment())
        self.best_cost = self.tree.cost()
        self.best = self.tree.assignment()
        self.moves_tried = 0
        self.moves_feasible = 0
        self.check_budget = True
        self.compound_share = 0.3
        self.rounds = 4

    def run(self, deadline: float, stop_at: float = -np.inf) -> BranchedTree:
        """Anneal until ``deadline`` or a tree of cost ``stop_at``; return the best tree."""
        tree, rng = self.tree, self.rng
        if tree.num_tasks < 2:
            return BranchedTree.from_assignment(self.problem.tasks, self.best)
        start = time.perf_counter()
        span = max(deadline - start, 1e-9)
        hot = self.initial_temperature()
        cost = tree.cost()
        while True:
            now = time.perf_counter()
            if now >= deadline or self.best_cost <= stop_at + 1e-12:
                break
            # Temperature falls geometrically within each round; each round restarts hot.
            position = (now - start) / span * self.rounds
            temperature = hot * 1e-3 ** (position % 1.0)
            for _ in range(50):
                compound = rng.random() < self.compound_share
                change = self.step(temperature, compound)
                if change is None:
                    continue
                cost += change
                if cost < self.best_cost - 1e-12:
                    cost = tree.cost()
                    self.best_cost, self.best = cost, tree.assignment()
        return BranchedTree.from_assignment(self.problem.tasks, self.best)

    def accept(self, change: float, temperature: float) -> bool:
        """Metropolis rule: always downhill, uphill with probability exp(-change / T)."""
        if change <= 0:
            return True
        return self.rng.random() < math.exp(-change / max(temperature, 1e-300))

    def step(self, temperature: float, compound: bool) -> float | None:
        """Try one move; return its cost change if taken.

        A compound step may leave the budget with its first move and then takes
        the best of a few moves that bring the tree back within it; the pair is
        taken or undone together.
        """
        tree = self.tree
        self.check_budget = not compound
        move = self.propose()
        self.check_budget = True
        self.moves_tried += 1
        if move is None:
            return None
        self.moves_feasible += 1
        change, apply = move
        if not compound:
            if not self.accept(change, temperature):
                return None
            apply()
            return change

        saved = tree.snapshot()
        apply()
        if tree.over_budget():
            repair = self.best_repair()
            if repair is None:
                tree.restore(saved)
                return None
            change += repair[0]
            if not self.accept(change, temperature):
                tree.restore(saved)
                return None
            repair[1]()
            return change
        if self.accept(change, temperature):
            return change
        tree.restore(saved)
        return None

    def best_repair(self, samples: int = 8) -> tuple[float, Callable[[], None]] | None:
        """The cheapest of a few merges or task moves that bring the tree within budget."""
        best = None
        for _ in range(3 * samples):
            move = self.propose_merge() if self.rng.random() < 0.5 else self.propose_follow()
            if move is None:
                continue
            if best is None or move[0] < best[0]:
                best = move
            samples -= 1
            if not samples:
                break
        return best

    def initial_temperature(self) -> float:
        """A temperature at which a typical worsening move is taken half the time."""
        rises = []
        for _ in range(200):
            move = self.propose()
            if move is not None and move[0] > 0:
                rises.append(move[0])
        return float(np.median(rises)) / math.log(2) if rises else 1e-3

    def propose(self) -> tuple[float, Callable[[], None]] | None:
        """A random move within budget: its cost change and how to apply it."""
        kind = self.rng.random()
        if kind < 0.7:
            return self.propose_follow()
        if kind < 0.85:
            return self.propose_merge()
        return self.propose_split()

    # Moves -------------------------------------------------------------------------------

    def propose_follow(self) -> tuple[float, Callable[[], None]] | None:
        """A group follows task ``u`` from where their paths part, then goes alone.

        The group is task ``t`` alone or, half of the time, ``t``'s cluster in a
        random block ``g``; it keeps its own structure from block ``g`` down. With
        ``u == t`` the group keeps its path down to some block and goes alone below.
        """
        tree, rng = self.tree, self.rng
        blocks = tree.num_blocks
        t = int(rng.integers(tree.num_tasks))
        u = int(rng.integers(tree.num_tasks))
        g = blocks if rng.random() < 0.5 else int(rng.integers(1, blocks + 1))
        group = [t] if g == blocks else list(tree.members[g][int(tree.label[g, t])])
        if u == t:
            first = 0
        else:
            if u in group:
                return None
            shared = tree.label[:g, t] == tree.label[:g, u]
            first = int(np.argmin(shared)) if not shared.all() else g
        if first >= g:
            return None

        levels = range(first, g)
        join_sums, join_copies = np.zeros(blocks), np.zeros(blocks)
        alone_sums, alone_copies = np.zeros(blocks), np.zeros(blocks)
        leave_diameters, join_diameters, own_diameters = {}, {}, {}
        already_alone = np.zeros(blocks, dtype=bool)
        for b in levels:
            c = int(tree.label[b, t])
            cluster = tree.members[b][c]
            own_diameters[b] = tree.diameter_of(b, group)
            already_alone[b] = len(cluster) == len(group)
            if already_alone[b]:
                leave_diameters[b] = 0.0
                leave_sum, leave_copies = -tree.diameter[b][c], -1.0
            else:
                rest = [s for s in cluster if s not in group]
                leave_diameters[b] = tree.diameter_of(b, rest)
                leave_sum, leave_copies = leave_diameters[b] - tree.diameter[b][c], 0.0
                alone_sums[b], alone_copies[b] = leave_sum + own_diameters[b], 1.0
            if u != t:
                target = int(tree.label[b, u])
                old = tree.diameter[b][target]
                join_diameters[b] = tree.joined_diameter(
                    b, tree.members[b][target], old, group, own_diameters[b]
                )
                join_sums[b] = leave_sum + join_diameters[b] - old
                join_copies[b] = leave_copies

        join_cost = tree.cost_change(join_sums, join_copies)
        alone_cost = tree.cost_change(alone_sums, alone_copies)
        # Option e: follow u (or keep the own path) through block e, alone from e + 1 to g - 1.
        ends = np.arange(first - 1, g)
        block_index = np.arange(blocks)[None, :]
        inside = (block_index >= first) & (block_index < g)
        follow = inside & (block_index <= ends[:, None])
        alone = inside & (block_index > ends[:, None])
        if u == t:
            follow[:] = False
        changes = (follow * join_cost + alone * alone_cost).sum(axis=1)
        copies = follow * join_copies + alone * alone_copies
        unchanged = ~follow.any(axis=1) & ~(alone & ~already_alone[None, :]).any(axis=1)
        usable = (tree.fitting(copies) if self.check_budget else True) & ~unchanged
        if not usable.any():
            return None
        option = int(np.flatnonzero(usable)[np.argmin(changes[usable])])

        def apply() -> None:
            for b in levels:
                if follow[option, b]:
                    tree.remove(b, group, leave_diameters[b])
                    tree.add(b, group, int(tree.label[b, u]), join_diameters[b])
                elif alone[option, b] and not already_alone[b]:
                    tree.remove(b, group, leave_diameters[b])
                    tree.add(b, group, None, own_diameters[b])

        return float(changes[option]), apply

    def propose_merge(self) -> tuple[float, Callable[[], None]] | None:
        """Two clusters of one block that hang from the same cluster above merge."""
        tree, rng = self.tree, self.rng
        b = int(rng.integers(tree.num_blocks))
        t = int(rng.integers(tree.num_tasks))
        siblings = np.arange(tree.num_tasks)
        if b:
            siblings = siblings[tree.label[b - 1] == tree.label[b - 1, t]]
        keep = int(tree.label[b, t])
        others = np.unique(tree.label[b, siblings])
        others = others[others != keep]
        if not len(others):
            return None
        gone = int(rng.choice(others))
        copies = np.zeros(tree.num_blocks)
        copies[b] = -1
        if self.check_budget and not tree.fits(copies):
            return None
        a_idx = np.asarray(tree.members[b][keep])
        g_idx = np.asarray(tree.members[b][gone])
        merged = max(
            tree.diameter[b][keep],
            tree.diameter[b][gone],
            float(tree.d[b][np.ix_(a_idx, g_idx)].max()),
            float(tree.d[b][a_idx, a_idx].max()),
            float(tree.d[b][g_idx, g_idx].max()),
        )
        sums = np.zeros(tree.num_blocks)
        sums[b] = merged - tree.diameter[b][keep] - tree.diameter[b][gone]
        change = float(tree.cost_change(sums, copies).sum())
        return change, lambda: tree.merge(b, keep, gone, merged)

    def propose_split(self) -> tuple[float, Callable[[], None]] | None:
        """A cluster splits in two along the clusters below it (tasks, in the last block)."""
        tree, rng = self.tree, self.rng
        b = int(rng.integers(tree.num_blocks))
        t = int(rng.integers(tree.num_tasks))
        c = int(tree.label[b, t])
        group = tree.members[b][c]
        if b + 1 < tree.num_blocks:
            below = tree.label[b + 1, group]
            units = [list(np.asarray(group)[below == x]) for x in np.unique(below)]
        else:
            units = [[s] for s in group]
        if len(units) < 2:
            return None
        copies = np.zeros(tree.num_blocks)
        copies[b] = 1
        if self.check_budget and not tree.fits(copies):
            return None

        # Two random seed units; every other unit joins the seed it is closest to.
        first, second = rng.choice(len(units), size=2, replace=False)
        sides: list[list[int]] = [list(units[first]), list(units[second])]
        for i, unit in enumerate(units):
            if i in (first, second):
                continue
            far = [float(tree.d[b][np.ix_(unit, side)].max()) for side in sides]
            sides[int(np.argmin(far))].extend(unit)
        stay, leave = tree.diameter_of(b, sides[0]), tree.diameter_of(b, sides[1])
        sums = np.zeros(tree.num_blocks)
        sums[b] = stay + leave - tree.diameter[b][c]
        change = float(tree.cost_change(sums, copies).sum())
        leaving = [int(s) for s in sides[1]]
        return change, lambda: tree.split(b, c, leaving, stay, leave)
