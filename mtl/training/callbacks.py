"""The callback that decides the tree before the main fit: affinity, then budgeted search."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from mtl.branching.affinity import dissimilarity_tensor
from mtl.branching.budget import Budget, human
from mtl.branching.exact import ExactSearch
from mtl.branching.search import SearchProblem, SearchResult
from mtl.branching.tradeoff import plot_tradeoff, tradeoff_front
from mtl.branching.tree import BranchedTree
from mtl.data.base import MultiTaskDataModule
from mtl.models.branched import BranchedNetwork
from mtl.report import plot_affinity, plot_tree
from mtl.training.module import MultiTaskModule
from mtl.training.single_task import SingleTaskResult, SingleTaskTrainer

log = logging.getLogger(__name__)


class BranchSearchCallback(pl.Callback):
    """Before the main fit: train (or reuse) single-task networks, measure task affinity
    at every branch point by RSA, search the cheapest tree within budget, build it.

    Writes to ``output_dir``: ``affinity.npy`` and ``dissimilarity.npy`` (points x
    tasks x tasks), ``affinity.png``, ``tree.yaml`` and ``tree.png``. On several
    devices, rank zero decides and broadcasts the tree.

    Args:
        search: maps a :class:`SearchProblem` to a :class:`SearchResult`.
        single_task: trains or loads the single-task networks.
        budget: parameter budget, absolute (``1.5M``) or a fraction of the separate tree.
        flops_budget: optional FLOP budget per image, in the same forms.
        num_images: K, the held-out images compared by RSA.
        pool: if set, average-pool activations to ``pool`` x ``pool`` before flattening
            (the paper flattens unpooled activations).
        output_dir: where the artefacts go.
        identity: per task, a description of everything that determines its single-task
            network (its cache key).
        tree: a fixed tree (as in ``tree.yaml``) that skips the search.
        tradeoff: also find the best tree at every parameter budget level (``tradeoff.png``
            and the ``tradeoff`` list in ``tree.yaml``); one search per level, by exact
            branch and bound where the problem is small enough for it.
        seed: if set, the global random state is reseeded before the branched network is
            built, so that its training does not depend on whether the single-task
            networks came from the cache.
    """

    def __init__(
        self,
        search: Callable[[SearchProblem], SearchResult],
        single_task: SingleTaskTrainer,
        budget: str | float = 0.5,
        flops_budget: str | float | None = None,
        num_images: int = 200,
        pool: int | None = None,
        output_dir: str = ".",
        identity: Mapping[str, str] | None = None,
        tree: dict | None = None,
        tradeoff: bool = True,
        seed: int | None = None,
    ) -> None:
        self.search = search
        self.single_task = single_task
        self.budget = Budget.parse(budget, "params")
        self.flops_budget = None if flops_budget is None else Budget.parse(flops_budget, "flops")
        self.num_images = num_images
        self.pool = pool
        self.output_dir = Path(output_dir)
        self.identity = identity
        self.fixed_tree = tree
        self.tradeoff = tradeoff
        self.seed = seed
        self.front: list[SearchResult] = []
        self.singles: dict[str, SingleTaskResult] = {}
        self.result: SearchResult | None = None
        self.problem: SearchProblem | None = None

    # Lightning hook ---------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: MultiTaskModule, stage: str) -> None:
        if stage != "fit" or pl_module.network is not None:
            return
        tree = self.decide(pl_module, trainer.datamodule) if trainer.is_global_zero else None
        if trainer.world_size > 1:
            tree = trainer.strategy.broadcast(tree, src=0)
        if self.seed is not None:
            pl.seed_everything(self.seed, workers=True, verbose=False)
        pl_module.build(BranchedTree.from_dict(tree))

    # The steps --------------------------------------------------------------------------------

    def decide(self, module: MultiTaskModule, datamodule: MultiTaskDataModule) -> dict:
        """Run single-task training, affinity and search; return the tree as plain data."""
        if datamodule is None:
            raise ValueError(
                "the branch search needs a datamodule: call trainer.fit(module, datamodule=...)"
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        encoder = module.make_encoder()
        # Settings that can fail are checked before any training.
        block_resources, fixed_resources = self.measure_resources(module, datamodule)
        if self.fixed_tree is not None:
            tree = self.check_fixed_tree(module, encoder.names, block_resources, fixed_resources)
        else:
            limits = self.resolve_budgets(len(module.task_names), block_resources, fixed_resources)
            datamodule.rsa_dataloader(self.num_images)
        self.singles = self.single_task.get(module, datamodule, self.identity)

        if self.fixed_tree is not None:
            log.info("Using the tree given in the configuration:\n%s", tree.describe())
            return tree.to_dict()

        affinity, dissimilarity = self.measure_affinity(datamodule)
        np.save(self.output_dir / "affinity.npy", affinity)
        np.save(self.output_dir / "dissimilarity.npy", dissimilarity)
        plot_affinity(affinity, module.task_names, encoder.names, self.output_dir / "affinity.png")

        self.problem = SearchProblem(
            tuple(module.task_names), dissimilarity, block_resources, fixed_resources, limits
        )
        self.result = self.search(self.problem)
        if self.tradeoff:
            # Exact branch and bound is both faster than enumeration and proven, where it fits.
            exact = ExactSearch(time_limit_s=None)
            front_search = exact if self.problem.num_tasks <= exact.max_tasks else self.search
            self.front = tradeoff_front(self.problem, front_search, "params")
            plot_tradeoff(
                self.front, self.output_dir / "tradeoff.png", self.result, budget=limits["params"]
            )
        self.report_choice(self.result, encoder.names)
        return self.result.tree.to_dict()

    @torch.no_grad()
    def measure_affinity(self, datamodule: MultiTaskDataModule) -> tuple[np.ndarray, np.ndarray]:
        """RSA affinity and dissimilarity at every branch point, from the single-task networks."""
        loader = datamodule.rsa_dataloader(self.num_images)
        names = list(self.singles)
        features: list[list[list[torch.Tensor]]] | None = None
        for t, name in enumerate(tqdm(names, desc="RSA activations", unit="task")):
            network: BranchedNetwork = self.singles[name].module.network
            device = next(network.parameters()).device
            network.eval()
            for batch in loader:
                per_point = network.task_features(batch["image"].to(device))
                if features is None:
                    features = [[[] for _ in names] for _ in per_point]
                for d, point in enumerate(per_point):
                    activation = point[name]
                    if self.pool is not None:
                        activation = F.adaptive_avg_pool2d(activation, self.pool)
                    features[d][t].append(activation.flatten(1).float().cpu())
        stacked = [[torch.cat(f).numpy() for f in per_task] for per_task in features]
        affinity, dissimilarity = dissimilarity_tensor(stacked)
        log.info(
            "Measured task affinity by RSA on %d images at %d branch points",
            self.num_images,
            len(stacked),
        )
        return affinity, dissimilarity

    def measure_resources(
        self, module: MultiTaskModule, datamodule: MultiTaskDataModule
    ) -> tuple[dict, dict]:
        """Parameters and FLOPs per image of one copy of each block, and of all heads.

        Returns ``(block_resources, fixed_resources)`` as a :class:`SearchProblem` takes them.
        """
        encoder = module.make_encoder()
        input_shape = (datamodule.in_channels, *datamodule.input_size)
        heads = module.make_heads(encoder)
        feature_shape = encoder.output_shapes(input_shape)[-1]
        head_params = sum(
            p.numel() for h in heads.values() for p in h.parameters() if p.requires_grad
        )
        head_flops = 0
        with torch.no_grad():
            for head in heads.values():
                head.eval()
                with FlopCounterMode(display=False) as counter:
                    head(torch.zeros(1, *feature_shape))
                head_flops += int(counter.get_total_flops())

        block_resources = {
            "params": np.asarray(encoder.block_params(), dtype=float),
            "flops": np.asarray(encoder.block_flops(input_shape), dtype=float),
        }
        fixed_resources = {"params": float(head_params), "flops": float(head_flops)}
        return block_resources, fixed_resources

    def resolve_budgets(
        self, num_tasks: int, block_resources: dict, fixed_resources: dict
    ) -> dict:
        """The absolute limit of every budget; raises if one is outside the feasible range."""
        limits = {}
        for budget in [self.budget] + ([self.flops_budget] if self.flops_budget else []):
            per_block, fixed = block_resources[budget.resource], fixed_resources[budget.resource]
            smallest = fixed + per_block.sum()
            limits[budget.resource] = budget.resolve(smallest, fixed + num_tasks * per_block.sum())
        return limits

    def check_fixed_tree(
        self,
        module: MultiTaskModule,
        block_names: list[str],
        block_resources: dict,
        fixed_resources: dict,
    ) -> BranchedTree:
        """The configured tree, checked against the tasks and the encoder; writes
        ``tree.yaml`` and ``tree.png``, and warns when it exceeds a budget."""
        tree = BranchedTree.from_dict(self.fixed_tree)
        if sorted(tree.tasks) != sorted(module.task_names):
            raise ValueError(
                f"the given tree's tasks {list(tree.tasks)} are not the configured tasks "
                f"{list(module.task_names)}; name each configured task once in the tree"
            )
        # in the configured order, which the branched network's heads follow
        tree = BranchedTree.from_dict(
            {"tasks": module.task_names, "blocks": tree.to_dict()["blocks"]}
        )
        if tree.num_blocks != len(block_names):
            raise ValueError(
                f"the given tree has {tree.num_blocks} blocks but the encoder has "
                f"{len(block_names)} ({', '.join(block_names)}); give one partition per block"
            )
        resources = {
            name: tree.resources(per_block, fixed_resources[name])
            for name, per_block in block_resources.items()
        }
        try:
            limits = self.resolve_budgets(tree.num_tasks, block_resources, fixed_resources)
        except ValueError:
            limits = {}  # a budget no tree meets; the given tree is trained regardless
        for name, limit in limits.items():
            if resources[name] > limit * (1 + 1e-12):
                log.warning(
                    "The given tree uses %s %s, above the budget of %s; it is trained as given",
                    human(resources[name]),
                    name,
                    human(limit),
                )
        record = {
            **tree.to_dict(),
            "given": True,
            "params": resources["params"],
            "flops": resources["flops"],
            "block_names": list(block_names),
        }
        with open(self.output_dir / "tree.yaml", "w") as f:
            yaml.safe_dump(record, f, sort_keys=False, default_flow_style=None)
        title = f"given tree, {human(resources['params'])} parameters"
        plot_tree(tree, block_names, self.output_dir / "tree.png", title)
        return tree

    def report_choice(self, result: SearchResult, block_names: list[str]) -> None:
        """Log the decision and write ``tree.yaml`` and ``tree.png``."""
        limits = ", ".join(f"{k} <= {human(v)}" for k, v in self.problem.limits.items())
        log.info(
            "%s search (%s; %d candidates scored, %d within budget) chose cost %.4f "
            "(lower is better), %s parameters, %s FLOPs per image%s\n%s",
            result.algorithm,
            limits,
            result.trees_evaluated,
            result.trees_feasible,
            result.cost,
            human(result.resources["params"]),
            human(result.resources["flops"]),
            "; proven optimal"
            if result.proven_optimal
            else f"; not proven optimal, lower bound {result.lower_bound:.4f}",
            result.tree.describe(),
        )
        record = result.to_dict()
        record["block_names"] = list(block_names)
        record["limits"] = dict(self.problem.limits)
        if self.front:
            record["tradeoff"] = [
                {
                    "params": r.resources["params"],
                    "cost": r.cost,
                    "blocks": r.tree.to_dict()["blocks"],
                }
                for r in self.front
            ]
        with open(self.output_dir / "tree.yaml", "w") as f:
            yaml.safe_dump(
                json.loads(json.dumps(record)), f, sort_keys=False, default_flow_style=None
            )
        title = f"cost {result.cost:.3f} (lower is better), {human(result.resources['params'])} parameters"
        plot_tree(result.tree, block_names, self.output_dir / "tree.png", title)
