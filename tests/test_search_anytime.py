"""The anytime search: always within budget, and its lower bound never above the optimum."""

import numpy as np
import pytest

from mtl.branching import bounds
from mtl.branching.anytime import AnytimeSearch
from mtl.branching.bounds import (
    chain_lower_bound,
    clique_bounds,
    nearest_neighbour_bounds,
    relaxed_block_bounds,
    restriction_bounds,
    run_lower_bound,
)
from mtl.branching.exact import ExactSearch
from mtl.branching.greedy import greedy_tree
from mtl.branching.search import ExhaustiveSearch, SearchProblem, set_partitions
from mtl.branching.tree import BranchedTree, partition_cost


def random_problem(rng, tasks, blocks, flops=False):
    d = rng.uniform(0, 2, size=(blocks, tasks, tasks))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[:, np.arange(tasks), np.arange(tasks)] = 0.0
    block_resources = {"params": rng.integers(1, 1000, size=blocks).astype(float)}
    if flops:
        block_resources["flops"] = rng.integers(1, 1000, size=blocks).astype(float)
    problem = SearchProblem(tuple(f"t{i}" for i in range(tasks)), d, block_resources)
    shared = problem.resources_of([1] * blocks)
    separate = problem.resources_of([tasks] * blocks)
    for name in block_resources:
        problem.limits[name] = rng.uniform(shared[name], separate[name])
    return problem


def best_block_costs(d):
    """Brute force: each block's lowest mean cost for every copy count (column k)."""
    tasks = d.shape[1]
    best = np.full((d.shape[0], tasks + 1), np.inf)
    for b in range(d.shape[0]):
        for partition in set_partitions(range(tasks)):
            k = len(partition)
            best[b, k] = min(best[b, k], partition_cost(partition, d[b]))
    return best


@pytest.mark.parametrize("flops", [False, True])
def test_within_budget_and_bound_below_optimum_on_small_problems(flops):
    rng = np.random.default_rng(21 + flops)
    for tasks, blocks in [(2, 3), (3, 2), (4, 3), (5, 3), (5, 4), (6, 3)]:
        problem = random_problem(rng, tasks, blocks, flops)
        optimum = ExhaustiveSearch()(problem).cost
        # Relaxation bound only: no branch and bound to lean on.
        result = AnytimeSearch(time_limit_s=0.15, prove_up_to_tasks=0)(problem)
        assert problem.fits(result.tree.copies_per_block())
        assert result.tree.cost(problem.dissimilarity) == pytest.approx(result.cost, abs=1e-12)
        assert result.lower_bound <= optimum + 1e-9
        assert optimum <= result.cost + 1e-9
        assert result.proven_optimal == (result.lower_bound == result.cost)


def test_twelve_tasks_bound_below_exact_optimum():
    rng = np.random.default_rng(12)
    problem = random_problem(rng, 12, 5)
    optimum = ExactSearch(time_limit_s=None)(problem).cost
    result = AnytimeSearch(time_limit_s=0.5, prove_up_to_tasks=0)(problem)
    assert problem.fits(result.tree.copies_per_block())
    assert result.lower_bound <= optimum + 1e-9
    assert optimum <= result.cost + 1e-9
    # With branch and bound after annealing, the bound can only rise towards the optimum.
    proving = AnytimeSearch(time_limit_s=1.0)(problem)
    assert result.lower_bound - 1e-9 <= proving.lower_bound <= optimum + 1e-9
    assert optimum <= proving.cost + 1e-9


def test_forty_tasks_stays_within_budget_with_a_valid_bound():
    rng = np.random.default_rng(40)
    problem = random_problem(rng, 40, 6, flops=True)
    result = AnytimeSearch(time_limit_s=1.5, seed=3)(problem)
    tree = BranchedTree.from_dict(result.tree.to_dict())
    assert problem.fits(tree.copies_per_block())
    assert result.cost == pytest.approx(tree.cost(problem.dissimilarity), abs=1e-9)
    assert 0 <= result.lower_bound <= result.cost
    assert result.cost <= greedy_tree(problem).cost(problem.dissimilarity) + 1e-12


def test_forty_tasks_with_only_the_shared_tree_affordable_is_proven():
    # At the smallest budget only one copy per block fits: the cost is each block's
    # diameter over all tasks, and one copy is where the bound is exact.
    rng = np.random.default_rng(41)
    problem = random_problem(rng, 40, 4)
    problem.limits["params"] = problem.resources_of([1] * 4)["params"]
    result = AnytimeSearch(time_limit_s=0.5)(problem)
    expected = problem.dissimilarity.reshape(4, -1).max(axis=1).sum()
    assert result.cost == pytest.approx(expected)
    assert result.proven_optimal and result.lower_bound == result.cost


def test_block_bounds_never_exceed_the_best_partition():
    rng = np.random.default_rng(6)
    for tasks in range(2, 8):
        problem = random_problem(rng, tasks, 2)
        best = best_block_costs(problem.dissimilarity)
        counts = np.arange(1, tasks + 1)
        relaxed = relaxed_block_bounds(problem, exact_up_to=0)
        assert np.all(relaxed[:, 1:] <= best[:, 1:] + 1e-12)
        assert np.allclose(relaxed_block_bounds(problem)[:, 1:], best[:, 1:])
        # Each relaxation bounds the smallest sum of diameters (mean times count).
        for sums in (
            nearest_neighbour_bounds(problem.dissimilarity),
            restriction_bounds(problem.dissimilarity, subset_size=3),
            clique_bounds(problem.dissimilarity),
        ):
            assert np.all(sums[:, 1:] <= best[:, 1:] * counts + 1e-12)


def test_budget_grid_bound_stays_below_the_enumerated_one(monkeypatch):
    rng = np.random.default_rng(9)
    for _ in range(5):
        problem = random_problem(rng, 7, 4, flops=True)
        block = relaxed_block_bounds(problem)
        enumerated = chain_lower_bound(problem, block)
        assert enumerated <= ExactSearch(time_limit_s=None)(problem).cost + 1e-9
        monkeypatch.setattr(bounds, "MAX_ENUMERATED_COUNTS", 0)
        gridded = chain_lower_bound(problem, block)
        monkeypatch.undo()
        assert gridded <= enumerated + 1e-12
        assert gridded >= 0.5 * enumerated


@pytest.mark.parametrize("grid", [False, True])
def test_run_bound_stays_below_the_optimum(monkeypatch, grid):
    rng = np.random.default_rng(13 + grid)
    if grid:  # force the budget-grid bound used when copy counts are too many to list
        monkeypatch.setattr(bounds, "MAX_ENUMERATED_COUNTS", 0)
    for _ in range(8):
        tasks, blocks = int(rng.integers(2, 8)), int(rng.integers(1, 5))
        problem = random_problem(rng, tasks, blocks, flops=bool(rng.integers(2)))
        optimum = ExactSearch(time_limit_s=None)(problem).cost
        relaxed = run_lower_bound(problem, exact_up_to=0)
        exact_runs = run_lower_bound(problem)
        assert relaxed <= optimum + 1e-9
        assert exact_runs <= optimum + 1e-9
        # Exact run tables bound at least as tightly as exact single blocks.
        assert exact_runs >= chain_lower_bound(problem, relaxed_block_bounds(problem)) - 1e-9


def test_negative_dissimilarities_and_a_single_task():
    rng = np.random.default_rng(17)
    problem = random_problem(rng, 6, 3)
    problem.dissimilarity = problem.dissimilarity - 0.5
    problem.dissimilarity[:, np.arange(6), np.arange(6)] = 0.0
    optimum = ExhaustiveSearch()(problem).cost
    result = AnytimeSearch(time_limit_s=0.3)(problem)
    assert result.lower_bound <= optimum + 1e-9
    assert optimum <= result.cost + 1e-9
    single = SearchProblem(("only",), np.zeros((3, 1, 1)), {"params": [1, 2, 3]})
    assert AnytimeSearch(time_limit_s=0.1, prove_up_to_tasks=0)(single).cost == 0.0


def test_rejects_impossible_budget_and_bad_settings():
    rng = np.random.default_rng(2)
    problem = random_problem(rng, 5, 3)
    problem.limits["params"] = 1.0
    with pytest.raises(ValueError, match="no tree fits"):
        AnytimeSearch(time_limit_s=0.1)(problem)
    with pytest.raises(ValueError, match="time_limit_s"):
        AnytimeSearch(time_limit_s=0)
