"""Search the best tree for task affinities measured elsewhere.

    python -m mtl.search dissimilarity.npy --block-params 37K,148K,590K,2.4M \\
        --head-params 20K --tasks seg,depth,normals --budget 0.5

The tensor is blocks x tasks x tasks: the dissimilarity ``1 - affinity`` at each
branch point (or the affinity itself with ``--affinity``). The chosen tree is
printed as JSON: each block's clusters by task name, the cost (lower is
better), its lower bound, whether it is proven optimal, parameters and FLOPs.
Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mtl.branching.budget import Budget, human
from mtl.branching.search import SearchProblem, SearchResult, validate_dissimilarity
from mtl.branching.tradeoff import plot_tradeoff, tradeoff_front

SEARCH_CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "search"
_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtT]?)\s*$")
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class InputError(ValueError):
    """Input the command line cannot use; its message is the whole report."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise InputError(f"{message} (see python -m mtl.search --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parser = _Parser(
        prog="python -m mtl.search",
        description="Choose the branched multi-task tree of lowest task-dissimilarity cost "
        "within a parameter (and FLOPs) budget, from a blocks x tasks x tasks tensor.",
    )
    parser.add_argument("tensor", help=".npy file, blocks x tasks x tasks dissimilarity")
    parser.add_argument(
        "--affinity", action="store_true", help="the tensor holds affinities; use 1 - affinity"
    )
    parser.add_argument(
        "--block-params", required=True, help="parameters of one copy of each block: 37K,148K,..."
    )
    parser.add_argument("--block-flops", help="FLOPs of one copy of each block, same form")
    parser.add_argument("--head-params", default="0", help="parameters of all heads together")
    parser.add_argument("--head-flops", default="0", help="FLOPs of all heads together")
    parser.add_argument("--tasks", help="task names, comma separated (default t0,t1,...)")
    parser.add_argument(
        "--budget",
        required=True,
        help="parameter budget: absolute (1.5M) or a fraction of the separate networks (0.5)",
    )
    parser.add_argument("--flops-budget", help="FLOPs budget, same forms (needs --block-flops)")
    parser.add_argument(
        "--search",
        default="exact",
        help=f"search configuration in {SEARCH_CONFIGS}: exact, exhaustive or anytime",
    )
    parser.add_argument("--time-limit", type=float, help="seconds for the exact or anytime search")
    parser.add_argument(
        "--tradeoff", metavar="PNG", help="also draw cost vs. parameters for every budget level"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the search does")
    return parser


def parse_amounts(text: str, what: str) -> np.ndarray:
    """``'37K,1.5M,200'`` -> array of floats; each amount finite and >= 0."""
    values = []
    for item in text.split(","):
        match = _AMOUNT.match(item)
        if not match:
            raise InputError(f"cannot read {what} {item.strip()!r} in {text!r}: use e.g. 37K,1.5M")
        values.append(float(match.group(1)) * _SCALE[match.group(2).upper()])
    return np.array(values)


def load_dissimilarity(path: str, affinity: bool) -> np.ndarray:
    """Read and check the tensor: blocks x tasks x tasks, finite, symmetric, zero diagonal."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"tensor file not found: {path}")
    with open(file, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise InputError(
            f"{path} is not a .npy file: save the one tensor with numpy.save "
            "(a text file or an .npz archive is not read)"
        )
    try:
        tensor = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputError(f"cannot read {path} as a .npy array: {error}") from None
    if not np.issubdtype(tensor.dtype, np.number):
        raise InputError(f"{path} holds {tensor.dtype} values, not numbers")
    kind = "affinity" if affinity else "dissimilarity"
    if tensor.ndim != 3 or tensor.shape[1] != tensor.shape[2] or 0 in tensor.shape:
        raise InputError(
            f"{kind} tensor must have shape (blocks, tasks, tasks), got {tensor.shape} in {path}"
        )
    if not np.all(np.isfinite(tensor)):
        bad = np.argwhere(~np.isfinite(tensor))[0].tolist()
        raise InputError(f"{kind} tensor holds NaN or infinite values, first at index {bad}")
    dissimilarity = 1.0 - tensor.astype(np.float64) if affinity else tensor.astype(np.float64)

    diagonal = np.diagonal(dissimilarity, axis1=1, axis2=2)
    if np.abs(diagonal).max() > 1e-6:
        b, t = np.unravel_index(np.argmax(np.abs(diagonal)), diagonal.shape)
        expected = "1 for an affinity" if affinity else "0 for a dissimilarity"
        hint = "" if affinity or abs(diagonal[b, t] - 1) > 1e-6 else " (pass --affinity?)"
        raise InputError(
            f"{kind}[{b},{t},{t}] = {tensor[b, t, t]:.6g}: the diagonal must be {expected}{hint}"
        )
    low, high = dissimilarity.min(), dissimilarity.max()
    if low < -1e-6 or high > 2 + 1e-6:
        allowed = "[-1, 1]" if affinity else "[0, 2]"
        raise InputError(
            f"{kind} values must lie in {allowed} (1 - Spearman correlation), "
            f"got range [{tensor.min():.6g}, {tensor.max():.6g}]"
        )
    try:
        dissimilarity = validate_dissimilarity(np.clip(dissimilarity, 0.0, 2.0))
    except ValueError as error:
        raise InputError(str(error).replace("dissimilarity", kind, 1)) from None
    diagonal_index = np.arange(dissimilarity.shape[1])
    dissimilarity[:, diagonal_index, diagonal_index] = 0.0
    return dissimilarity


def build_problem(args: argparse.Namespace) -> SearchProblem:
    """The search problem from the parsed arguments, with budgets resolved to absolute limits."""
    dissimilarity = load_dissimilarity(args.tensor, args.affinity)
    blocks, num_tasks, _ = dissimilarity.shape
    tasks = [f"t{i}" for i in range(num_tasks)]
    if args.tasks is not None:
        tasks = [name.strip() for name in args.tasks.split(",")]
        if len(tasks) != num_tasks or not all(tasks):
            raise InputError(
                f"--tasks names {len(tasks)} tasks ({args.tasks!r}) but the tensor has "
                f"{num_tasks}; give {num_tasks} distinct names"
            )
        repeated = sorted({name for name in tasks if tasks.count(name) > 1})
        if repeated:
            raise InputError(f"--tasks names {repeated} more than once; give distinct names")

    block_resources = {"params": parse_amounts(args.block_params, "--block-params")}
    fixed = {"params": float(parse_amounts(args.head_params, "--head-params")[0])}
    if args.block_flops is not None:
        block_resources["flops"] = parse_amounts(args.block_flops, "--block-flops")
        fixed["flops"] = float(parse_amounts(args.head_flops, "--head-flops")[0])
    elif args.flops_budget is not None:
        raise InputError("--flops-budget needs --block-flops (FLOPs of one copy of each block)")
    for name, values in block_resources.items():
        if len(values) != blocks:
            flag = "--block-params" if name == "params" else "--block-flops"
            raise InputError(
                f"{flag} has {len(values)} values but the tensor has {blocks} blocks: "
                f"give one value per block"
            )

    problem = SearchProblem(tuple(tasks), dissimilarity, block_resources, fixed)
    shared = problem.resources_of([1] * blocks)
    separate = problem.resources_of([num_tasks] * blocks)
    budgets = {"params": args.budget, "flops": args.flops_budget}
    for name in block_resources:
        if budgets[name] is None:
            continue
        try:
            budget = Budget.parse(budgets[name], resource=name)
            problem.limits[name] = budget.resolve(shared[name], separate[name])
        except ValueError as error:
            raise InputError(str(error)) from None
    if not problem.fits([1] * blocks):
        raise InputError("no tree fits both budgets: raise --budget or --flops-budget")
    return problem


def build_search(name: str, time_limit: float | None) -> Callable[[SearchProblem], SearchResult]:
    """The search object from ``conf/search/<name>.yaml``, with the time limit applied."""
    config = SEARCH_CONFIGS / f"{name}.yaml"
    if not config.is_file():
        known = sorted(p.stem for p in SEARCH_CONFIGS.glob("*.yaml"))
        raise InputError(f"unknown --search {name!r}; choose one of {', '.join(known)}")
    settings = OmegaConf.load(config)
    if time_limit is not None:
        if "time_limit_s" not in settings:
            raise InputError(f"--search {name} takes no time limit; drop --time-limit")
        if time_limit <= 0:
            raise InputError(f"--time-limit must be positive seconds, got {time_limit:g}")
        settings.time_limit_s = time_limit
    return instantiate(settings)


def describe(problem: SearchProblem, result: SearchResult) -> dict:
    """The result as plain data, every number with its unit and direction."""
    out = result.to_dict()
    out["copies_per_block"] = result.tree.copies_per_block()
    out["parameters"] = result.resources.get("params")
    out["flops"] = result.resources.get("flops")
    out["budget"] = {"params": problem.limits.get("params"), "flops": problem.limits.get("flops")}
    out["gap"] = result.cost - result.lower_bound
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        problem = build_problem(args)
        search = build_search(args.search, args.time_limit)
        result = search(problem)
        payload = describe(problem, result)
        if args.tradeoff:
            front = tradeoff_front(problem, search, "params")
            plot_tradeoff(front, args.tradeoff, chosen=result, budget=problem.limits["params"])
            payload["tradeoff"] = [
                {"parameters": r.resources["params"], "cost": r.cost, "lower_bound": r.lower_bound}
                for r in front
            ]
    except (InputError, ValueError) as error:
        message = " ".join(str(error).split())
        print(f"mtl.search: error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(payload, indent=2))
    logging.getLogger(__name__).info(
        "chose cost %.4f (lower is better) at %s parameters",
        result.cost,
        human(result.resources["params"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
