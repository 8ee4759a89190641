"""The branched multi-task network: encoder block copies arranged as a tree, plus task heads."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mtl.branching.tree import BranchedTree
from mtl.models.encoders import BlockEncoder


class BlockCopy(nn.Module):
    """One copy of an encoder block, shared by the tasks of one cluster."""

    def __init__(self, block: nn.Module, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)

    def extra_repr(self) -> str:
        return "tasks=[" + ", ".join(self.tasks) + "]"


class BranchedNetwork(nn.Module):
    """A tree of encoder block copies with one head per task.

    Block ``b`` is copied once per cluster of the tree's partition ``P_b``; each
    copy runs once per batch on the output of its parent copy and feeds only its
    cluster's tasks. Dense tasks' outputs are upsampled to the input size.
    The parameter count is ``sum_b |P_b| * params(block b) + sum_t params(head t)``.

    Args:
        encoder: the encoder whose blocks are copied (its weights seed every copy).
        tree: which tasks share which block copies.
        heads: one head per task name of the tree.
        dense: task names whose outputs are per-pixel maps.
    """

    def __init__(
        self,
        encoder: BlockEncoder,
        tree: BranchedTree,
        heads: Mapping[str, nn.Module],
        dense: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        if tree.num_blocks != encoder.num_blocks:
            raise ValueError(
                f"tree has {tree.num_blocks} blocks but the encoder has {encoder.num_blocks} "
                f"({', '.join(encoder.names)})"
            )
        missing = set(tree.tasks) - set(heads)
        if missing:
            raise ValueError(f"no head for tasks {sorted(missing)}")
        self.tree = tree
        self.dense = frozenset(dense)
        self.block_names = list(encoder.names)
        self.stages = nn.ModuleList()
        for block, partition in zip(encoder.blocks, tree.partitions):
            copies = [
                BlockCopy(copy.deepcopy(block), [tree.tasks[t] for t in cluster])
                for cluster in partition
            ]
            self.stages.append(nn.ModuleList(copies))
        self.heads = nn.ModuleDict({name: heads[name] for name in tree.tasks})
        self._parents = [
            [tree.parent(b, c) or 0 for c in range(len(p))] for b, p in enumerate(tree.partitions)
        ]
        last = tree.partitions[-1]
        self._last_copy = {tree.tasks[t]: c for c, cluster in enumerate(last) for t in cluster}

    def block_outputs(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Outputs of every block copy: ``[block][cluster]``."""
        outputs, previous = [], [x]
        for stage, parents in zip(self.stages, self._parents):
            previous = [copy_(previous[p]) for copy_, p in zip(stage, parents)]
            outputs.append(previous)
        return outputs

    def task_features(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """At every branch point, the features each task sees."""
        features = []
        for block, outputs in enumerate(self.block_outputs(x)):
            partition = self.tree.partitions[block]
            features.append(
                {
                    self.tree.tasks[t]: outputs[c]
                    for c, cluster in enumerate(partition)
                    for t in cluster
                }
            )
        return features

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        last = self.block_outputs(x)[-1]
        predictions = {}
        for name, head in self.heads.items():
            out = head(last[self._last_copy[name]])
            if name in self.dense and out.shape[-2:] != x.shape[-2:]:
                out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
            predictions[name] = out
        return predictions

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
