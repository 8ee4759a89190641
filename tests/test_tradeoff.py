"""The budget/cost trade-off front against brute force, and its plot."""

import numpy as np
import pytest

from mtl.branching.exact import ExactSearch
from mtl.branching.search import ExhaustiveSearch, SearchProblem, enumerate_chains
from mtl.branching.tradeoff import plot_tradeoff, tradeoff_front
from mtl.branching.tree import BranchedTree


def random_problem(seed, tasks=4, blocks=3, flops_limit=None):
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 2, size=(blocks, tasks, tasks))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[:, np.arange(tasks), np.arange(tasks)] = 0.0
    resources = {"params": rng.integers(1, 100, size=blocks).astype(float)}
    limits = {"params": 1e9}
    if flops_limit is not None:
        resources["flops"] = rng.integers(1, 100, size=blocks).astype(float)
        limits["flops"] = flops_limit
    names = tuple(f"t{i}" for i in range(tasks))
    return SearchProblem(names, d, resources, {"params": 5.0}, limits)


def brute_force_front(problem):
    """Every tree's (params, cost); keep the levels where the cost strictly improves."""
    points = []
    for chain in enumerate_chains(problem.num_tasks, problem.num_blocks):
        tree = BranchedTree(problem.tasks, chain)
        copies = tree.copies_per_block()
        others = {k: v for k, v in problem.limits.items() if k != "params"}
        used = problem.resources_of(copies)
        if all(used[k] <= v for k, v in others.items()):
            points.append((used["params"], tree.cost(problem.dissimilarity)))
    front = []
    for params, cost in sorted(points):
        if not front or cost < front[-1][1] - 1e-12:
            front.append((params, cost))
    return front


@pytest.mark.parametrize("search", [ExactSearch(time_limit_s=None), ExhaustiveSearch()])
def test_front_matches_brute_force(search):
    for seed in range(3):
        problem = random_problem(seed)
        front = tradeoff_front(problem, search)
        expected = brute_force_front(problem)
        assert len(front) == len(expected)
        for result, (params, cost) in zip(front, expected):
            assert result.resources["params"] == pytest.approx(params)
            assert result.cost == pytest.approx(cost, abs=1e-9)


def test_front_is_non_dominated_and_respects_other_limits():
    problem = random_problem(5, tasks=5, blocks=3, flops_limit=400.0)
    front = tradeoff_front(problem, ExactSearch(time_limit_s=None))
    params = [r.resources["params"] for r in front]
    costs = [r.cost for r in front]
    assert params == sorted(set(params))
    assert all(a > b for a, b in zip(costs, costs[1:]))
    assert all(r.resources["flops"] <= 400.0 for r in front)
    assert [(p, pytest.approx(c, abs=1e-9)) for p, c in zip(params, costs)] == brute_force_front(
        problem
    )
    # The first entry is the fully shared tree, the cheapest there is.
    assert front[0].tree.copies_per_block() == [1, 1, 1]


def test_plot_writes_a_png(tmp_path):
    problem = random_problem(1)
    front = tradeoff_front(problem, ExactSearch())
    path = plot_tradeoff(front, tmp_path / "front.png", chosen=front[len(front) // 2])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_tradeoff([], tmp_path / "empty.png")
