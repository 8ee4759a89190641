"""The exhaustive search against an independent brute force and a hand-worked example."""

import itertools

import numpy as np
import pytest

from mtl.branching.search import ExhaustiveSearch, SearchProblem


def restricted_growth_strings(n):
    """Every set partition of n items as a label list (independent of the library's enumerator)."""
    for labels in itertools.product(range(n), repeat=n):
        if labels[0] == 0 and all(labels[i] <= max(labels[:i]) + 1 for i in range(1, n)):
            yield labels


def brute_force(dis, block_params, fixed, limit):
    """Cheapest chain of partitions by the method's formula, by plain enumeration."""
    blocks, tasks = dis.shape[0], dis.shape[1]
    rows = list(restricted_growth_strings(tasks))
    best = np.inf
    for chain in itertools.product(rows, repeat=blocks):
        refines = all(
            len({chain[b - 1][s] for s in range(tasks) if chain[b][s] == c}) == 1
            for b in range(1, blocks)
            for c in set(chain[b])
        )
        if not refines:
            continue
        params = fixed + sum((max(row) + 1) * p for row, p in zip(chain, block_params))
        if params > limit:
            continue
        cost = 0.0
        for b, row in enumerate(chain):
            cluster_costs = []
            for c in set(row):
                members = [s for s in range(tasks) if row[s] == c]
                cluster_costs.append(
                    max((dis[b, s, t] for s in members for t in members), default=0)
                )
            cost += sum(cluster_costs) / len(cluster_costs)
        best = min(best, cost)
    return best


def random_dissimilarity(rng, blocks, tasks):
    d = rng.uniform(0, 2, size=(blocks, tasks, tasks))
    d = (d + d.transpose(0, 2, 1)) / 2
    for b in range(blocks):
        np.fill_diagonal(d[b], 0)
    return d


@pytest.mark.parametrize(("tasks", "blocks"), [(3, 2), (3, 3), (4, 2), (4, 3)])
def test_matches_brute_force_on_random_problems(tasks, blocks):
    rng = np.random.default_rng(tasks * 10 + blocks)
    for _ in range(4):
        dis = random_dissimilarity(rng, blocks, tasks)
        block_params = rng.integers(10, 1000, size=blocks).astype(float)
        fixed = 50.0
        smallest, largest = fixed + block_params.sum(), fixed + tasks * block_params.sum()
        limit = rng.uniform(smallest, largest)
        problem = SearchProblem(
            tuple(f"t{i}" for i in range(tasks)),
            dis,
            {"params": block_params},
            {"params": fixed},
            {"params": limit},
        )
        result = ExhaustiveSearch()(problem)
        assert result.cost == pytest.approx(brute_force(dis, block_params, fixed, limit), abs=1e-9)
        assert result.resources["params"] <= limit
        assert result.tree.cost(dis) == pytest.approx(result.cost, abs=1e-12)


def test_hand_worked_three_tasks():
    # One block, tasks a, b, c; d(a,b)=0.1, d(a,c)=0.8, d(b,c)=0.9; block 100 params, heads 0.
    # Budget 200 allows at most 2 copies. Candidates: {abc}: 0.9; {ab}{c}: (0.1+0)/2 = 0.05;
    # {ac}{b}: 0.4; {a}{bc}: 0.45. The optimum is {a,b}{c} with cost 0.05.
    d = np.array([[[0, 0.1, 0.8], [0.1, 0, 0.9], [0.8, 0.9, 0]]])
    problem = SearchProblem(("a", "b", "c"), d, {"params": [100]}, {}, {"params": 200})
    result = ExhaustiveSearch()(problem)
    assert result.cost == pytest.approx(0.05)
    assert result.tree.to_dict()["blocks"] == [[["a", "b"], ["c"]]]
    # With 3 copies allowed, full separation costs 0.
    problem.limits["params"] = 300
    assert ExhaustiveSearch()(problem).cost == 0


def test_no_feasible_tree_names_the_smallest():
    d = np.zeros((2, 2, 2))
    problem = SearchProblem(("a", "b"), d, {"params": [10, 10]}, {"params": 5}, {"params": 20})
    with pytest.raises(ValueError, match="smallest tree's 25"):
        ExhaustiveSearch()(problem)


def test_bad_dissimilarity_is_rejected():
    with pytest.raises(ValueError, match="symmetric"):
        SearchProblem(("a", "b"), np.array([[[0, 1], [0.5, 0]]]), {"params": [1]})
    with pytest.raises(ValueError, match="NaN"):
        SearchProblem(("a", "b"), np.array([[[0, np.nan], [np.nan, 0]]]), {"params": [1]})
