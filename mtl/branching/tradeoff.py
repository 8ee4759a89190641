"""The trade-off between budget and cost: the best tree at every budget level that matters.

:func:`tradeoff_front` walks the budget of one resource down from its limit: it
searches, records the tree, and searches again with the limit set just below
that tree's use of the resource, until no tree fits. What it keeps is the Pareto
front: more of the resource only where it buys a strictly lower cost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtl.branching.bounds import MAX_ENUMERATED_COUNTS, copy_count_vectors, count_copy_vectors
from mtl.branching.budget import human
from mtl.branching.search import SearchProblem, SearchResult

_RELATIVE_STEP = 1e-9


def tradeoff_front(
    problem: SearchProblem,
    search: Callable[[SearchProblem], SearchResult],
    resource: str | None = None,
) -> list[SearchResult]:
    """Best tree for every budget level of ``resource`` where the cost strictly improves.

    Levels run from the fully shared tree to the fully separate one, whatever
    the problem's own limit on ``resource``; its other limits still hold. Entries
    are sorted by growing use of the resource and strictly falling cost; with an
    exact search each is the cheapest tree within its use. A heuristic search can
    miss levels or report a costlier tree than the best; entries it finds
    dominated are dropped.

    Args:
        problem: the search problem.
        search: maps a problem to a result, e.g. ``ExactSearch()``.
        resource: the resource to vary; default the first limited one, else the first.
    """
    resource = resource or next(iter(problem.limits), None) or next(iter(problem.block_resources))
    if resource not in problem.block_resources:
        raise ValueError(
            f"no per-block amounts for resource {resource!r}; "
            f"known resources: {sorted(problem.block_resources)}"
        )
    levels = _budget_levels(problem, resource)
    separate = problem.resources_of([problem.num_tasks] * problem.num_blocks)[resource]
    limit = separate
    smallest = problem.resources_of([1] * problem.num_blocks)[resource]

    found: list[SearchResult] = []
    while limit >= smallest * (1 - 1e-12):
        level = _with_limits(problem, {**problem.limits, resource: limit})
        if not level.fits([1] * problem.num_blocks):
            break  # not even the fully shared tree fits (another limit binds)
        result = search(level)
        found.append(result)
        limit = _level_below(result.resources[resource], levels)

    front: list[SearchResult] = []
    for result in sorted(found, key=lambda r: (r.resources[resource], r.cost)):
        if not front or result.cost < front[-1].cost - 1e-12:
            front.append(result)
    return front


def _with_limits(problem: SearchProblem, limits: dict[str, float]) -> SearchProblem:
    return SearchProblem(
        problem.tasks,
        problem.dissimilarity,
        problem.block_resources,
        problem.fixed_resources,
        limits,
    )


def _budget_levels(problem: SearchProblem, resource: str) -> np.ndarray | None:
    """Every amount of ``resource`` some tree uses, ascending; ``None`` when too many."""
    if count_copy_vectors(problem.num_tasks, problem.num_blocks) > MAX_ENUMERATED_COUNTS:
        return None
    counts = copy_count_vectors(problem.num_tasks, problem.num_blocks).astype(np.float64)
    fixed = problem.fixed_resources.get(resource, 0.0)
    return np.unique(fixed + counts @ problem.block_resources[resource])


def _level_below(used: float, levels: np.ndarray | None) -> float:
    """The largest budget level strictly below ``used`` (a hair below when levels are unknown)."""
    if levels is not None:
        below = levels[levels < used * (1 - _RELATIVE_STEP)]
        return float(below[-1]) if len(below) else -np.inf
    return used * (1 - 1e-6)


def plot_tradeoff(
    front: list[SearchResult],
    path: str | Path,
    chosen: SearchResult | None = None,
    resource: str = "params",
    budget: float | None = None,
) -> Path:
    """Draw cost (lower is better) against ``resource`` for a front, to a PNG file.

    Args:
        front: entries of :func:`tradeoff_front`.
        path: where to write the PNG.
        chosen: the tree picked for training, marked with a star.
        resource: the resource on the horizontal axis (``"params"`` or ``"flops"``).
        budget: the limit on ``resource``, drawn as a dashed vertical line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    if not front:
        raise ValueError("the trade-off front is empty: no tree fits the budget")
    path = Path(path)
    amounts = [r.resources[resource] for r in front]
    costs = [r.cost for r in front]

    figure = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.step(amounts, costs, where="post", color="tab:blue", alpha=0.5)
    ax.plot(amounts, costs, "o", color="tab:blue", label="best tree within budget")
    bounds = [r.lower_bound for r in front]
    if any(b < c - 1e-12 for b, c in zip(bounds, costs)):
        ax.plot(amounts, bounds, "v", color="tab:gray", label="lower bound on best cost")
    if chosen is not None:
        ax.plot(
            [chosen.resources[resource]],
            [chosen.cost],
            "*",
            markersize=16,
            color="tab:red",
            label=f"chosen: {human(chosen.resources[resource])}, cost {chosen.cost:.3f}",
        )
    if budget is not None:
        ax.axvline(budget, color="tab:gray", linestyle="--", label=f"budget {human(budget)}")
    unit = "parameters" if resource == "params" else "FLOPs" if resource == "flops" else resource
    ax.set_xlabel(f"{unit}, heads included (the budget; smaller is cheaper)")
    ax.set_ylabel("cost: summed mean task dissimilarity (lower is better)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: human(value)))
    ax.set_title(f"Budget vs. cost: {len(front)} trees on the front")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
