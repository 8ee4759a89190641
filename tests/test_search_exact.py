"""The exact branch and bound against enumeration, hand-worked optima and its own guarantees."""

import itertools

import numpy as np
import pytest

from mtl.branching.bounds import copy_count_vectors, count_copy_vectors
from mtl.branching.exact import ExactSearch, branch_and_bound, min_plus
from mtl.branching.greedy import greedy_tree
from mtl.branching.search import ExhaustiveSearch, SearchProblem, set_partitions
from mtl.branching.subsets import partition_sum_table, subset_diameters
from mtl.branching.tree import BranchedTree, partition_cost


def random_dissimilarity(rng, blocks, tasks, low=0.0, high=2.0):
    d = rng.uniform(low, high, size=(blocks, tasks, tasks))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[:, np.arange(tasks), np.arange(tasks)] = 0.0
    return d


def random_problem(rng, tasks, blocks, flops=False, low=0.0):
    """Random dissimilarities and block sizes; each limit drawn between shared and separate."""
    block_resources = {"params": rng.integers(1, 1000, size=blocks).astype(float)}
    fixed = {"params": 10.0 * tasks}
    if flops:
        block_resources["flops"] = rng.integers(1, 1000, size=blocks).astype(float)
        fixed["flops"] = 0.0
    problem = SearchProblem(
        tuple(f"t{i}" for i in range(tasks)),
        random_dissimilarity(rng, blocks, tasks, low=low),
        block_resources,
        fixed,
    )
    shared = problem.resources_of([1] * blocks)
    separate = problem.resources_of([tasks] * blocks)
    for name in block_resources:
        problem.limits[name] = rng.uniform(shared[name], separate[name])
    return problem


def check_valid(problem, result):
    """The result's tree exists, fits every limit, and its stated cost is its real cost."""
    assert result.tree.tasks == problem.tasks
    assert problem.fits(result.tree.copies_per_block())
    assert result.tree.cost(problem.dissimilarity) == pytest.approx(result.cost, abs=1e-12)
    assert result.resources == problem.resources_of(result.tree.copies_per_block())


@pytest.mark.parametrize("flops", [False, True])
def test_matches_exhaustive_on_random_problems(flops):
    rng = np.random.default_rng(7 + flops)
    for tasks, blocks in itertools.product(range(1, 6), range(1, 5)):
        for _ in range(3):
            problem = random_problem(rng, tasks, blocks, flops=flops)
            exact = ExactSearch(time_limit_s=None)(problem)
            reference = ExhaustiveSearch()(problem)
            assert exact.cost == pytest.approx(reference.cost, abs=1e-9), (tasks, blocks)
            assert exact.proven_optimal and exact.lower_bound == exact.cost
            check_valid(problem, exact)


def test_matches_exhaustive_on_six_tasks():
    rng = np.random.default_rng(11)
    for flops in (False, True, False):
        problem = random_problem(rng, 6, 4, flops=flops)
        exact = ExactSearch(time_limit_s=None)(problem)
        assert exact.cost == pytest.approx(ExhaustiveSearch()(problem).cost, abs=1e-9)
        check_valid(problem, exact)


def test_matches_exhaustive_with_negative_dissimilarities():
    # Outside the method's [0, 2], more copies can raise a block's cost; still exact.
    rng = np.random.default_rng(3)
    for tasks, blocks in [(4, 3), (5, 3), (5, 4)]:
        problem = random_problem(rng, tasks, blocks, low=-1.0)
        exact = ExactSearch(time_limit_s=None)(problem)
        assert exact.cost == pytest.approx(ExhaustiveSearch()(problem).cost, abs=1e-9)
        check_valid(problem, exact)


def test_hand_worked_three_tasks_two_blocks():
    # Tasks a, b, c; every block copy costs 1 parameter, heads 0.
    #   block 1: d(a,b)=0.2  d(a,c)=0.6  d(b,c)=0.8
    #   block 2: d(a,b)=0.5  d(a,c)=0.3  d(b,c)=0.9
    # Copy counts never fall with depth. With a budget of 4 they are (1,1), (1,2), (1,3)
    # or (2,2):
    #   (1,1): 0.8 + 0.9 = 1.7
    #   (1,2): 0.8 + best 2-split of block 2: {a,c}{b} = 0.3/2 = 0.15 -> 0.95
    #   (1,3): 0.8 + 0 = 0.8
    #   (2,2): both blocks share one partition: {a,b}{c}: 0.2/2 + 0.5/2 = 0.35,
    #          {a,c}{b}: 0.3 + 0.15 = 0.45, {b,c}{a}: 0.4 + 0.45 = 0.85 -> 0.35
    # Optimum 0.35: {a,b}{c} in both blocks.
    # Budget 5 adds (2,3): best 2-split of block 1, {a,b}{c} = 0.1, then singletons: 0.1.
    # Budget 3 leaves (1,1) and (1,2): 0.95 with {a,b,c} then {a,c}{b}.
    d = np.array(
        [
            [[0, 0.2, 0.6], [0.2, 0, 0.8], [0.6, 0.8, 0]],
            [[0, 0.5, 0.3], [0.5, 0, 0.9], [0.3, 0.9, 0]],
        ]
    )
    expected = {
        4: (0.35, [[["a", "b"], ["c"]], [["a", "b"], ["c"]]]),
        5: (0.1, [[["a", "b"], ["c"]], [["a"], ["b"], ["c"]]]),
        3: (0.95, [[["a", "b", "c"]], [["a", "c"], ["b"]]]),
    }
    for budget, (cost, blocks) in expected.items():
        problem = SearchProblem(("a", "b", "c"), d, {"params": [1, 1]}, {}, {"params": budget})
        result = ExactSearch()(problem)
        assert result.cost == pytest.approx(cost, abs=1e-12)
        assert result.tree.to_dict()["blocks"] == blocks


def test_twelve_tasks_six_blocks_is_solved_and_valid():
    rng = np.random.default_rng(2024)
    problem = random_problem(rng, 12, 6)
    problem.limits["params"] = np.mean(
        [problem.resources_of([1] * 6)["params"], problem.resources_of([12] * 6)["params"]]
    )
    result = ExactSearch(time_limit_s=None)(problem)
    check_valid(problem, result)
    assert result.proven_optimal and result.lower_bound == result.cost
    # No heuristic tree within budget beats the proven optimum.
    assert result.cost <= greedy_tree(problem).cost(problem.dissimilarity) + 1e-12
    assert result.cost <= BranchedTree.shared(problem.tasks, 6).cost(problem.dissimilarity)


def test_time_limit_returns_a_valid_tree_and_bound():
    rng = np.random.default_rng(5)
    for tasks, blocks in [(9, 5), (11, 6)]:
        problem = random_problem(rng, tasks, blocks)
        optimum = ExactSearch(time_limit_s=None)(problem).cost
        for limit in (1e-9, 0.05):
            cut = ExactSearch(time_limit_s=limit)(problem)
            check_valid(problem, cut)
            assert cut.lower_bound <= optimum + 1e-12
            assert optimum <= cut.cost + 1e-12
            assert cut.proven_optimal == (cut.lower_bound == cut.cost)
        # Stopped before the first choice, the bound is the root relaxation's, below the tree.
        assert ExactSearch(time_limit_s=1e-9)(problem).lower_bound < optimum


def test_initial_tree_is_kept_when_optimal():
    rng = np.random.default_rng(8)
    problem = random_problem(rng, 5, 3)
    best = ExhaustiveSearch()(problem)
    outcome = branch_and_bound(problem, initial=best.tree)
    assert outcome.proven_optimal
    assert outcome.tree.cost(problem.dissimilarity) == pytest.approx(best.cost, abs=1e-12)


def test_no_budget_gives_separate_networks_and_no_tree_fits_is_explained():
    rng = np.random.default_rng(1)
    d = random_dissimilarity(rng, 3, 4)
    free = SearchProblem(tuple("abcd"), d, {"params": [1, 2, 3]})
    assert ExactSearch()(free).cost == 0.0
    tight = SearchProblem(tuple("abcd"), d, {"params": [1, 2, 3]}, {"params": 4}, {"params": 9})
    with pytest.raises(ValueError, match="smallest tree's 10"):
        ExactSearch()(tight)


def test_refuses_too_many_tasks():
    problem = SearchProblem(
        tuple(f"t{i}" for i in range(16)), np.zeros((2, 16, 16)), {"p": [1, 1]}
    )
    with pytest.raises(ValueError, match="anytime search"):
        ExactSearch(max_tasks=14)(problem)


def test_subset_tables_match_enumeration():
    rng = np.random.default_rng(4)
    d = random_dissimilarity(rng, 2, 5)
    diameters = subset_diameters(d)
    table = partition_sum_table(diameters, 5)
    for mask in range(1, 32):
        members = [t for t in range(5) if mask >> t & 1]
        for b in range(2):
            sums = {}
            for partition in set_partitions(members):
                total = partition_cost(partition, d[b]) * len(partition)
                sums[len(partition)] = min(sums.get(len(partition), np.inf), total)
            for count in range(6):
                assert table[b, mask, count] == pytest.approx(sums.get(count, np.inf))


def test_min_plus_matches_definition():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(3, 7)), rng.uniform(size=(3, 7))
    a[0, 2] = np.inf
    naive = np.array(
        [[min(a[r, i] + b[r, k - i] for i in range(k + 1)) for k in range(7)] for r in range(3)]
    )
    assert np.allclose(min_plus(a, b), naive)
    wide = rng.uniform(size=(500, 7))
    assert np.allclose(min_plus(wide, b[0])[5], min_plus(wide[5:6], b[0])[0])


def test_copy_count_vectors_are_all_nondecreasing_vectors():
    for tasks, blocks in [(1, 3), (3, 1), (4, 3), (5, 4)]:
        rows = copy_count_vectors(tasks, blocks)
        expected = list(itertools.combinations_with_replacement(range(1, tasks + 1), blocks))
        assert [tuple(r) for r in rows] == expected
        assert len(rows) == count_copy_vectors(tasks, blocks)


def test_statistics_count_the_initial_tree_as_scored():
    # Identical tasks: the greedy starting tree costs 0, which the root bound proves optimal
    # before any other tree is completed; it was still scored and fits.
    problem = SearchProblem(
        ("a", "b", "c"), np.zeros((3, 3, 3)), {"params": np.ones(3)}, {"params": 0.0}
    )
    result = ExactSearch()(problem)
    assert result.cost == 0.0 and result.proven_optimal
    assert result.trees_evaluated >= 1 and result.trees_feasible >= 1
    assert problem.fits(result.tree.copies_per_block())
