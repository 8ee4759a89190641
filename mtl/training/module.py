"""The LightningModule that trains a branched network on all its tasks jointly."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from mtl.branching.tree import BranchedTree
from mtl.models.branched import BranchedNetwork
from mtl.models.encoders import BlockEncoder
from mtl.tasks.base import Task
from mtl.training.weighting import FixedWeights

EncoderFactory = Callable[[], BlockEncoder]


class MultiTaskModule(pl.LightningModule):
    """A branched network with per-task heads, losses, loss weighting and metrics.

    The network is built once a tree is known: either given here, or set by
    :meth:`build` (the branch-search callback does this before the main fit).
    Metrics are logged as ``val/<task>/<metric>``; ``val/loss`` is the weighted sum.

    Args:
        encoder: builds a fresh encoder cut into blocks.
        tasks: the tasks, in tree order.
        optimizer: builds the optimiser from the parameters.
        scheduler: builds a learning-rate scheduler from the optimiser, or None.
        weighting: builds the loss weighting from ``{task: weight}``.
        tree: the tree to build right away, or None.
    """

    def __init__(
        self,
        encoder: EncoderFactory,
        tasks: Sequence[Task] | Mapping[str, Task],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., object] | None = None,
        weighting: Callable[..., nn.Module] = FixedWeights,
        tree: BranchedTree | Mapping | None = None,
    ) -> None:
        super().__init__()
        tasks = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
        names = [t.name for t in tasks]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"tasks need unique names and at least one task, got {names}")
        self.tasks = {t.name: t for t in tasks}
        self.encoder_factory = encoder
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.weighting_factory = weighting
        self.weighting = weighting({t.name: t.weight for t in tasks})
        self.network: BranchedNetwork | None = None
        self.val_metrics = nn.ModuleDict({n: t.make_metrics() for n, t in self.tasks.items()})
        if tree is not None:
            self.build(tree if isinstance(tree, BranchedTree) else BranchedTree.from_dict(tree))

    # Construction ---------------------------------------------------------------------------

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def make_encoder(self) -> BlockEncoder:
        return self.encoder_factory()

    def make_heads(self, encoder: BlockEncoder) -> dict[str, nn.Module]:
        return {n: t.make_head(encoder.channels[-1]) for n, t in self.tasks.items()}

    def build(self, tree: BranchedTree) -> None:
        """Build the branched network for ``tree`` (its tasks must be this module's tasks)."""
        if list(tree.tasks) != self.task_names:
            raise ValueError(f"tree tasks {list(tree.tasks)} differ from {self.task_names}")
        encoder = self.make_encoder()
        dense = {n for n, t in self.tasks.items() if t.dense}
        self.network = BranchedNetwork(encoder, tree, self.make_heads(encoder), dense)

    def single_task(self, name: str) -> MultiTaskModule:
        """A fresh module for one of this module's tasks alone, with the same settings."""
        tree = BranchedTree.shared([name], self.make_encoder().num_blocks)
        return MultiTaskModule(
            self.encoder_factory,
            [self.tasks[name]],
            self.optimizer_factory,
            self.scheduler_factory,
            self.weighting_factory,
            tree,
        )

    @property
    def tree(self) -> BranchedTree | None:
        return None if self.network is None else self.network.tree

    # Steps ----------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.network is None:
            raise RuntimeError("no tree yet: call build(tree) or add the branch-search callback")
        return self.network(image)

    def _losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
        predictions = self(batch["image"])
        losses = {n: t.loss(predictions[n], batch[t.target_key]) for n, t in self.tasks.items()}
        return predictions, losses

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, losses = self._losses(batch)
        total = self.weighting(losses)
        size = len(batch["image"])
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        for name, loss in losses.items():
            self.log(f"train/{name}/loss", loss, batch_size=size)
        return total

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        predictions, losses = self._losses(batch)
        size = len(batch["image"])
        self.log("val/loss", self.weighting(losses), prog_bar=True, batch_size=size)
        for name, task in self.tasks.items():
            self.log(f"val/{name}/loss", losses[name], batch_size=size)
            task.update_metrics(self.val_metrics[name], predictions[name], batch[task.target_key])

    def on_validation_epoch_end(self) -> None:
        for name, metrics in self.val_metrics.items():
            for key, value in metrics.compute().items():
                self.log(f"val/{name}/{key}", value)
            metrics.reset()

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # Checkpoints carry the tree so that a network can be rebuilt before loading weights.

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.tree is not None:
            checkpoint["branched_tree"] = self.tree.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        tree = checkpoint.get("branched_tree")
        if tree is not None and (self.tree is None or self.tree.to_dict() != tree):
            self.build(BranchedTree.from_dict(tree))
