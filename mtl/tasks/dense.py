"""Per-pixel tasks: segmentation, depth, surface normals, edges and masked regression.

Predictions arrive as raw head outputs already upsampled to the target size.
Every loss averages over the valid pixels of the batch only and returns a
finite zero, still attached to the graph, when a batch has no valid pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from mtl.tasks.base import Task
from mtl.tasks.metrics import DepthMetrics, EdgeFScore, MaskedL1, NormalAngleMetrics

NYUD_EDGE_TOLERANCE_FRAC = 0.011


def _check_shapes(task: Task, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"task {task.name!r}: prediction shape {tuple(prediction.shape)} differs from "
            f"target shape {tuple(target.shape)}; upsample the prediction to the input size"
        )


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``valid`` is True; zero (with grad) when nothing is valid."""
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp(min=1)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over ``valid`` elements; invalid targets never reach the gradient."""
    clean_target = torch.where(valid, target, torch.zeros_like(target))
    return masked_mean((prediction - clean_target).abs(), valid)


class SegmentationTask(Task):
    """Semantic segmentation into ``num_classes`` classes; cross-entropy ignoring ``ignore_index``.

    The main metric is ``miou`` (higher is better): macro mean IoU over a
    dataset-level confusion matrix. Classes absent from both prediction and
    target over the whole evaluation set are left out of the mean (torchmetrics
    1.9 behaviour for ``average="macro"``), not counted as IoU 0. Also reports
    ``pixel_acc``, the fraction of labelled pixels predicted correctly.
    """

    dense = True
    main_metric = "miou"
    higher_is_better = True

    def __init__(self, name: str, num_classes: int, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(name, **kwargs)
        if num_classes < 2:
            raise ValueError(f"task {name!r}: num_classes must be >= 2, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"task {name!r}: ignore_index={ignore_index} is a class id (0..{num_classes - 1}); "
                f"use a value outside the classes, e.g. 255"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of N x C x H x W logits against N x H x W labels, mean over labelled pixels."""
        target = target.long()
        total = F.cross_entropy(
            prediction, target, ignore_index=self.ignore_index, reduction="sum"
        )
        return total / (target != self.ignore_index).sum().clamp(min=1)

    def make_metrics(self) -> MetricCollection:
        """``miou`` and ``pixel_acc`` over the dataset."""
        return MetricCollection(
            {
                "miou": MulticlassJaccardIndex(
                    self.num_classes, average="macro", ignore_index=self.ignore_index
                ),
                "pixel_acc": MulticlassAccuracy(
                    self.num_classes, average="micro", ignore_index=self.ignore_index
                ),
            }
        )


class DepthTask(Task):
    """Depth in metres; L1 loss over valid pixels (finite target > 0).

    The main metric is ``rmse`` in metres (lower is better), averaged per pixel
    over the dataset; ``abs_rel``, ``log_rmse`` and ``delta1`` come with it.
    """

    dense = True
    main_metric = "rmse"
    higher_is_better = False

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute depth error over valid pixels of N x 1 x H x W maps."""
        _check_shapes(self, prediction, target)
        valid = torch.isfinite(target) & (target > 0)
        return masked_l1(prediction, target, valid)

    def make_metrics(self) -> MetricCollection:
        """``rmse`` (the main metric), ``abs_rel``, ``log_rmse`` and ``delta1``."""
        return MetricCollection({"rmse": DepthMetrics()})


class NormalsTask(Task):
    """Surface normals; loss between the normalised prediction and the target at valid pixels.

    A target pixel is valid when it is finite and not all-zero. ``loss_type``
    ``"l1"`` sums the absolute differences of the three components, ``"cosine"``
    is 1 - cosine similarity. The main metric is ``mean_angle`` in degrees
    (lower is better); ``median_angle`` and ``within_11_25`` / ``within_22_5`` /
    ``within_30`` (percent) come with it.

    Args:
        median_bin_deg: None for the exact median angle, or a histogram bin width
            in degrees for bounded memory (see :class:`NormalAngleMetrics`).
    """

    dense = True
    main_metric = "mean_angle"
    higher_is_better = False
    loss_types = ("l1", "cosine")

    def __init__(
        self,
        name: str,
        loss_type: str = "l1",
        median_bin_deg: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name, **kwargs)
        if loss_type not in self.loss_types:
            raise ValueError(
                f"task {name!r}: loss_type={loss_type!r} is not one of {self.loss_types}"
            )
        self.loss_type = loss_type
        self.median_bin_deg = median_bin_deg

    @property
    def out_channels(self) -> int:
        return 3

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over valid pixels of the L1 or cosine loss between unit normals."""
        _check_shapes(self, prediction, target)
        valid = torch.isfinite(target).all(dim=1) & (target != 0).any(dim=1)
        clean_target = torch.where(valid[:, None], target, torch.zeros_like(target))
        unit_prediction = F.normalize(prediction, dim=1)
        unit_target = F.normalize(clean_target, dim=1)

        if self.loss_type == "l1":
            per_pixel = (unit_prediction - unit_target).abs().sum(dim=1)
        else:
            per_pixel = 1 - (unit_prediction * unit_target).sum(dim=1)
        return masked_mean(per_pixel, valid)

    def make_metrics(self) -> MetricCollection:
        """``mean_angle`` (the main metric), ``median_angle`` and the within-threshold shares."""
        return MetricCollection({"mean_angle": NormalAngleMetrics(self.median_bin_deg)})


class EdgeTask(Task):
    """Binary edge maps; class-balanced binary cross-entropy on one logit per pixel.

    Positive pixels are weighted by ``pos_weight`` and negative ones by
    ``1 - pos_weight``; with ``pos_weight=None`` it is the fraction of negative
    pixels in the batch, so a batch without edges gives no loss at all. The
    loss is averaged over the batch's pixels (non-finite targets are ignored).
    The main metric is ``odsf`` (higher is better), with the matching tolerance
    given in pixels or as a fraction of the diagonal (NYUD: 0.011, the default).
    """

    dense = True
    main_metric = "odsf"
    higher_is_better = True

    def __init__(
        self,
        name: str,
        pos_weight: float | None = None,
        tolerance_px: float | None = None,
        tolerance_frac: float | None = None,
        thresholds: int | Sequence[float] = 99,
        **kwargs,
    ) -> None:
        super().__init__(name, **kwargs)
        if pos_weight is not None and not 0 <= pos_weight <= 1:
            raise ValueError(
                f"task {name!r}: pos_weight must be in [0, 1] or None, got {pos_weight}"
            )
        if tolerance_px is not None and tolerance_frac is not None:
            raise ValueError(
                f"task {name!r}: give tolerance_px ({tolerance_px}) or tolerance_frac "
                f"({tolerance_frac}), not both"
            )
        if tolerance_px is None and tolerance_frac is None:
            tolerance_frac = NYUD_EDGE_TOLERANCE_FRAC
        self.pos_weight = pos_weight
        self.tolerance_px = tolerance_px
        self.tolerance_frac = tolerance_frac
        self.thresholds = thresholds

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Class-balanced BCE of N x 1 x H x W logits against {0, 1} targets."""
        _check_shapes(self, prediction, target)
        valid = torch.isfinite(target)
        positive = valid & (target > 0.5)
        negative = valid & ~positive
        count = valid.sum().clamp(min=1)

        if self.pos_weight is None:
            weight_positive = negative.sum() / count
        else:
            weight_positive = torch.tensor(self.pos_weight, device=prediction.device)
        weights = positive * weight_positive + negative * (1 - weight_positive)

        clean_target = torch.where(positive, 1.0, 0.0).to(prediction.dtype)
        total = F.binary_cross_entropy_with_logits(
            prediction, clean_target, weight=weights.to(prediction.dtype), reduction="sum"
        )
        return total / count

    def make_metrics(self) -> MetricCollection:
        """``odsf`` over the dataset."""
        metric = EdgeFScore(self.tolerance_px, self.tolerance_frac, self.thresholds)
        return MetricCollection({"odsf": metric})

    def update_metrics(
        self, metrics: MetricCollection, prediction: torch.Tensor, target: torch.Tensor
    ) -> None:
        """Score the edge probabilities (the sigmoid of the logits)."""
        metrics.update(torch.sigmoid(prediction), target)


class RegressionTask(Task):
    """Dense regression of ``channels`` maps; L1 loss over finite targets (NaN = ignore).

    Used for keypoint and edge maps of Taskonomy and for image reconstruction.
    The main metric is ``l1``, the mean absolute error over finite target values
    (lower is better).
    """

    dense = True
    main_metric = "l1"
    higher_is_better = False

    def __init__(self, name: str, channels: int = 1, **kwargs) -> None:
        super().__init__(name, **kwargs)
        if channels < 1:
            raise ValueError(f"task {name!r}: channels must be >= 1, got {channels}")
        self.channels = channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error over the finite target values."""
        _check_shapes(self, prediction, target)
        return masked_l1(prediction, target, torch.isfinite(target))

    def make_metrics(self) -> MetricCollection:
        """``l1`` over the dataset."""
        return MetricCollection({"l1": MaskedL1()})


class OffsetTask(RegressionTask):
    """Instance offsets: a 2-channel vector per pixel to its instance centre, NaN = ignore.

    Masked L1 loss; the main metric is ``l1`` in the target's units (lower is better).
    """

    def __init__(self, name: str, **kwargs) -> None:
        channels = kwargs.pop("channels", 2)
        if channels != 2:
            raise ValueError(f"task {name!r}: offsets have 2 channels, got channels={channels}")
        super().__init__(name, channels=2, **kwargs)
