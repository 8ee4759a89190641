"""Time the exact search against exhaustive enumeration, and the anytime search on 40 tasks.

    python experiments/benchmark_search.py            # about two minutes on two cores
    python experiments/benchmark_search.py --quick    # smaller sizes, shorter anytime runs

Problems are random: symmetric dissimilarities uniform in [0, 2] with a zero
diagonal, per-block parameter counts drawn from 1K to 1M, and a budget halfway
between the fully shared and the fully separate tree. Exhaustive and exact
searches run side by side on each problem, alternating, and must agree on the
cost to 1e-9. Times are wall-clock seconds on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtl.branching.anytime import AnytimeSearch  # noqa: E402
from mtl.branching.budget import Budget, human  # noqa: E402
from mtl.branching.exact import ExactSearch  # noqa: E402
from mtl.branching.search import ExhaustiveSearch, SearchProblem  # noqa: E402


def random_problem(
    num_tasks: int, num_blocks: int, seed: int, budget: float | None, equal: bool = False
) -> SearchProblem:
    """Random dissimilarities and block sizes (all 100K with ``equal``).

    ``budget`` is a fraction of the separate tree; ``None`` means halfway between
    the fully shared and the fully separate tree.
    """
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 2, size=(num_blocks, num_tasks, num_tasks))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[:, np.arange(num_tasks), np.arange(num_tasks)] = 0.0
    params = np.round(np.exp(rng.uniform(np.log(1e3), np.log(1e6), size=num_blocks)))
    if equal:
        params = np.full(num_blocks, 1e5)
    heads = 1e3 * num_tasks
    problem = SearchProblem(
        tuple(f"t{i}" for i in range(num_tasks)), d, {"params": params}, {"params": heads}
    )
    shared = problem.resources_of([1] * num_blocks)["params"]
    separate = problem.resources_of([num_tasks] * num_blocks)["params"]
    middle = (shared + separate) / 2
    fraction = middle / separate if budget is None else budget
    problem.limits["params"] = Budget.parse(fraction).resolve(shared, separate)
    return problem


def timed(search, problem: SearchProblem):
    start = time.perf_counter()
    result = search(problem)
    return result, time.perf_counter() - start


def compare(sizes: list[tuple[int, int]], seeds: int) -> None:
    """Exhaustive vs. exact on the same problems, alternating which runs first."""
    print("Exact vs. exhaustive search, random problems, budget halfway shared..separate")
    header = f"{'tasks':>5} {'blocks':>6} {'trees':>9} {'exhaustive s':>13} {'exact s':>9}"
    print(header + f" {'speed-up':>9}  agree")
    exhaustive, exact = ExhaustiveSearch(), ExactSearch(time_limit_s=None)
    for num_tasks, num_blocks in sizes:
        slow, fast, trees, agree = [], [], 0, True
        for seed in range(seeds):
            problem = random_problem(num_tasks, num_blocks, seed, budget=None)
            pair = [(exhaustive, slow), (exact, fast)]
            results = {}
            for search, times in pair if seed % 2 == 0 else pair[::-1]:
                result, seconds = timed(search, problem)
                times.append(seconds)
                results[search.name] = result
            trees = results["exhaustive"].trees_evaluated
            agree &= abs(results["exhaustive"].cost - results["exact"].cost) <= 1e-9
            agree &= results["exact"].proven_optimal
        ratio = statistics.median(s / f for s, f in zip(slow, fast))
        print(
            f"{num_tasks:>5} {num_blocks:>6} {trees:>9,} {statistics.median(slow):>13.3f} "
            f"{statistics.median(fast):>9.4f} {ratio:>8.1f}x  {'yes' if agree else 'NO'}"
        )
        if not agree:
            raise SystemExit(f"exact and exhaustive disagree on {num_tasks} x {num_blocks}")


def exact_alone(sizes: list[tuple[int, int]], seeds: int) -> None:
    """The exact search where enumeration is out of reach."""
    print("\nExact search alone (enumeration out of reach), over seeds")
    print(
        f"{'tasks':>5} {'blocks':>6} {'block sizes':>12} {'median s':>9} {'max s':>7} {'proven':>7}"
    )
    for num_tasks, num_blocks in sizes:
        for equal in (False, True):
            times, proven = [], 0
            for seed in range(seeds):
                problem = random_problem(num_tasks, num_blocks, seed, budget=None, equal=equal)
                result, seconds = timed(ExactSearch(time_limit_s=120), problem)
                times.append(seconds)
                proven += result.proven_optimal
            print(
                f"{num_tasks:>5} {num_blocks:>6} {'equal' if equal else '1K..1M':>12} "
                f"{statistics.median(times):>9.2f} {max(times):>7.2f} {proven:>4}/{seeds}"
            )


def anytime(blocks: list[int], seconds: float) -> None:
    """40 tasks, as CelebA's attributes: cost, lower bound and gap of the anytime search."""
    print(f"\nAnytime search, 40 tasks, time limit {seconds:g} s (cost: lower is better)")
    print(
        f"{'blocks':>6} {'params':>8} {'budget':>8} {'cost':>8} {'bound':>8} {'gap %':>6} "
        f"{'s':>6}  copies per block"
    )
    for num_blocks in blocks:
        problem = random_problem(40, num_blocks, seed=0, budget=None)
        result, took = timed(AnytimeSearch(time_limit_s=seconds, seed=0), problem)
        assert problem.fits(result.tree.copies_per_block())
        gap = 100 * (result.cost - result.lower_bound) / result.cost
        print(
            f"{num_blocks:>6} {human(result.resources['params']):>8} "
            f"{human(problem.limits['params']):>8} {result.cost:>8.4f} "
            f"{result.lower_bound:>8.4f} {gap:>6.1f} {took:>6.1f}  {result.tree.copies_per_block()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    args = parser.parse_args()
    if args.quick:
        compare([(3, 4), (4, 4), (5, 4)], seeds=3)
        exact_alone([(10, 5)], seeds=2)
        anytime([6], seconds=5)
        return
    compare([(3, 4), (4, 4), (5, 4), (5, 5), (6, 4), (6, 5)], seeds=5)
    exact_alone([(8, 6), (10, 6), (12, 6), (12, 8)], seeds=5)
    anytime([6, 13], seconds=20)


if __name__ == "__main__":
    main()
