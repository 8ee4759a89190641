"""What every task declares: its head, loss, metrics and the direction of its main metric."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchmetrics import MetricCollection

HeadFactory = Callable[[int, int], nn.Module]


class Task:
    """One prediction target of a multi-task network.

    Subclasses set ``dense`` (per-pixel output at input size, or one vector per
    image), ``main_metric`` and ``higher_is_better``, and implement
    :meth:`loss` and :meth:`make_metrics`.

    Args:
        name: unique task name; also the key of its target in a batch unless
            ``target_key`` is given.
        weight: the task's fixed weight in the summed training loss.
        head: builds the task head from ``(in_channels, out_channels)``; defaults to
            the models' plain dense or global head.
        target_key: the batch key holding this task's target.
    """

    dense: bool = False
    main_metric: str = ""
    higher_is_better: bool = True

    def __init__(
        self,
        name: str,
        weight: float = 1.0,
        head: HeadFactory | None = None,
        target_key: str | None = None,
    ) -> None:
        self.name = name
        self.weight = float(weight)
        self.head_factory = head
        self.target_key = target_key or name

    @property
    def out_channels(self) -> int:
        raise NotImplementedError

    def make_head(self, in_channels: int) -> nn.Module:
        """A fresh head mapping encoder features to this task's raw output."""
        if self.head_factory is not None:
            return self.head_factory(in_channels, self.out_channels)
        from mtl.models.heads import DenseHead, GlobalHead

        head_class = DenseHead if self.dense else GlobalHead
        return head_class(in_channels, self.out_channels)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def make_metrics(self) -> MetricCollection:
        """Fresh metric state; the main metric is under the key ``main_metric``."""
        raise NotImplementedError

    def update_metrics(
        self, metrics: MetricCollection, prediction: torch.Tensor, target: torch.Tensor
    ) -> None:
        metrics.update(prediction, target)

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"
