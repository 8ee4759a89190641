"""Image-level tasks: one label per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

from mtl.tasks.base import Task


class ClassificationTask(Task):
    """Single-label classification over ``num_classes`` classes; cross-entropy loss.

    The main metric is top-1 accuracy (higher is better).
    """

    main_metric = "accuracy"
    higher_is_better = True

    def __init__(self, name: str, num_classes: int, **kwargs) -> None:
        super().__init__(name, **kwargs)
        if num_classes < 2:
            raise ValueError(f"task {name!r}: num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(prediction, target.long())

    def make_metrics(self) -> MetricCollection:
        return MetricCollection(
            {"accuracy": MulticlassAccuracy(self.num_classes, average="micro")}
        )


class BinaryTask(Task):
    """A yes/no attribute per image (target 0 or 1); logistic loss on one logit.

    The main metric is accuracy (higher is better).
    """

    main_metric = "accuracy"
    higher_is_better = True

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            prediction.reshape(-1), target.float().reshape(-1)
        )

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": BinaryAccuracy()})

    def update_metrics(
        self, metrics: MetricCollection, prediction: torch.Tensor, target: torch.Tensor
    ) -> None:
        metrics.update(torch.sigmoid(prediction.reshape(-1)), target.reshape(-1).long())
