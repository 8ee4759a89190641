"""Dataset-level metrics of dense tasks that torchmetrics lacks or computes differently.

Every metric here accumulates sums (or, for the exact normal median, the angles
themselves) over the whole evaluation set and reduces them across processes, so
the result is the per-pixel average over the dataset, never a mean of per-image
or per-batch means. Semantic segmentation uses torchmetrics'
``MulticlassJaccardIndex`` directly (see :class:`mtl.tasks.dense.SegmentationTask`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

NORMAL_ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


def _check_same_shape(prediction: torch.Tensor, target: torch.Tensor, metric: str) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"{metric}: prediction shape {tuple(prediction.shape)} differs from target shape "
            f"{tuple(target.shape)}; upsample the prediction to the target size first"
        )


def _nan() -> torch.Tensor:
    return torch.tensor(float("nan"))


class DepthMetrics(Metric):
    """RMSE, absolute relative error, log-RMSE and delta < 1.25 over valid depth pixels.

    Valid pixels have a finite target > 0. Every statistic is averaged per pixel
    over the whole dataset (the NYUD convention), not per image. ``compute``
    returns a dict: ``rmse`` (metres), ``abs_rel`` and ``log_rmse`` (unitless),
    all lower is better, and ``delta1`` (fraction of pixels with
    max(pred/gt, gt/pred) < 1.25, higher is better). Predictions are clamped to
    ``min_depth`` for ``log_rmse`` and ``delta1`` only, so that a non-positive
    raw prediction counts as a large error instead of NaN.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, min_depth: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        if min_depth <= 0:
            raise ValueError(f"DepthMetrics: min_depth must be > 0, got {min_depth}")
        self.min_depth = float(min_depth)
        for name in ("sum_squared", "sum_abs_rel", "sum_log_squared", "sum_delta1", "count"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add the valid pixels of one batch (any matching shapes, e.g. N x 1 x H x W)."""
        _check_same_shape(prediction, target, "DepthMetrics")
        valid = torch.isfinite(target) & (target > 0)
        pred = prediction[valid].double()
        gt = target[valid].double()

        clamped = pred.clamp(min=self.min_depth)
        ratio = torch.maximum(clamped / gt, gt / clamped)

        self.sum_squared += ((pred - gt) ** 2).sum()
        self.sum_abs_rel += ((pred - gt).abs() / gt).sum()
        self.sum_log_squared += ((clamped.log() - gt.log()) ** 2).sum()
        self.sum_delta1 += (ratio < 1.25).sum()
        self.count += gt.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        """Dataset-level statistics; NaN when no valid pixel was seen."""
        if self.count == 0:
            return {key: _nan() for key in ("rmse", "abs_rel", "log_rmse", "delta1")}
        return {
            "rmse": (self.sum_squared / self.count).sqrt().float(),
            "abs_rel": (self.sum_abs_rel / self.count).float(),
            "log_rmse": (self.sum_log_squared / self.count).sqrt().float(),
            "delta1": (self.sum_delta1 / self.count).float(),
        }


def normal_angles(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angles in degrees between N x 3 x ... predictions and targets at valid target pixels.

    A target pixel is valid when it is finite and not all-zero. Both vectors are
    normalised first; the angle is computed with atan2, which stays accurate
    near 0 degrees, where arccos of a float32 dot product does not.
    """
    _check_same_shape(prediction, target, "normal_angles")
    if prediction.ndim < 2 or prediction.shape[1] != 3:
        raise ValueError(
            f"normal_angles: expected 3 channels in dim 1, got shape {tuple(prediction.shape)}"
        )
    valid = torch.isfinite(target).all(dim=1) & (target != 0).any(dim=1)
    pred = prediction.movedim(1, -1)[valid].float()
    gt = target.movedim(1, -1)[valid].float()

    pred = F.normalize(pred, dim=-1)
    gt = F.normalize(gt, dim=-1)
    cross = torch.linalg.cross(pred, gt, dim=-1).norm(dim=-1)
    dot = (pred * gt).sum(dim=-1)
    return torch.rad2deg(torch.atan2(cross, dot))


class NormalAngleMetrics(Metric):
    """Mean and median angle error (degrees) and % of pixels within 11.25 / 22.5 / 30 degrees.

    Over valid pixels (target finite and not all-zero) of the whole dataset.
    ``compute`` returns ``mean_angle`` and ``median_angle`` (degrees, lower is
    better) and ``within_11_25``, ``within_22_5``, ``within_30`` (percent of
    valid pixels, higher is better). With ``median_bin_deg=None`` the median is
    exact: every valid angle is kept (4 bytes a pixel, gathered across
    processes), which is fine for the evaluation sets here (a few million
    pixels) but not for full-resolution NYUD on a small GPU; a bin width such as
    0.01 instead keeps a histogram and gives the median to within about that width.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, median_bin_deg: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sum_angle", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state(
            "count_within",
            torch.zeros(len(NORMAL_ANGLE_THRESHOLDS), dtype=torch.long),
            dist_reduce_fx="sum",
        )
        self.median_bin_deg = median_bin_deg
        if median_bin_deg is None:
            self.add_state("angles", [], dist_reduce_fx="cat")
        else:
            if not 0 < median_bin_deg <= 180:
                raise ValueError(
                    f"NormalAngleMetrics: median_bin_deg must be in (0, 180], got "
                    f"{median_bin_deg}; use e.g. 0.01, or None for the exact median"
                )
            num_bins = math.ceil(180.0 / median_bin_deg)
            self.add_state(
                "histogram", torch.zeros(num_bins, dtype=torch.long), dist_reduce_fx="sum"
            )

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of N x 3 x H x W raw predictions and targets."""
        angles = normal_angles(prediction, target)

        self.sum_angle += angles.double().sum()
        self.count += angles.numel()
        thresholds = torch.tensor(NORMAL_ANGLE_THRESHOLDS, device=angles.device)
        self.count_within += (angles[:, None] < thresholds).sum(dim=0)

        if self.median_bin_deg is None:
            self.angles.append(angles)
        else:
            num_bins = self.histogram.numel()
            index = (angles / self.median_bin_deg).long().clamp(0, num_bins - 1)
            self.histogram += torch.bincount(index, minlength=num_bins)

    def _median(self) -> torch.Tensor:
        if self.median_bin_deg is None:
            # torch.median returns the lower of the two middle values; average them as numpy does
            angles = dim_zero_cat(self.angles).double().sort().values
            middle = angles.numel() // 2
            if angles.numel() % 2:
                return angles[middle]
            return (angles[middle - 1] + angles[middle]) / 2
        # the value at rank count/2, interpolated linearly inside its histogram bin
        cumulative = self.histogram.cumsum(0).double()
        half = self.count.double().reshape(1) / 2
        index = int(torch.searchsorted(cumulative, half))
        below = cumulative[index - 1] if index > 0 else 0.0
        inside = (half[0] - below) / self.histogram[index].double()
        return (index + inside) * self.median_bin_deg

    def compute(self) -> dict[str, torch.Tensor]:
        """Dataset-level statistics; NaN when no valid pixel was seen."""
        keys = ["mean_angle", "median_angle"] + [_within_key(t) for t in NORMAL_ANGLE_THRESHOLDS]
        if self.count == 0:
            return {key: _nan() for key in keys}
        within = 100.0 * self.count_within.double() / self.count
        values = [self.sum_angle / self.count, self._median(), *within]
        return {key: value.float() for key, value in zip(keys, values)}


def _within_key(threshold: float) -> str:
    return "within_" + f"{threshold:g}".replace(".", "_")


def disk_max_filter(values: torch.Tensor, radius: float) -> torch.Tensor:
    """Each pixel of an M x 1 x H x W map replaced by the maximum within Euclidean ``radius``.

    The disk is the set of pixel offsets (dy, dx) with dy^2 + dx^2 <= radius^2, so
    thresholding the filtered map at t marks exactly the pixels whose Euclidean
    distance transform to the pixels >= t is at most ``radius``. Computed as one
    horizontal max-pool per row of the disk, on the map's device.
    """
    reach = int(math.floor(radius))
    if reach <= 0:
        return values
    values = values.float()
    height = values.shape[-2]
    padded_rows = (0, 0, reach, reach)
    result = values
    for dy in range(reach + 1):
        half = _disk_half_width(dy, radius)
        rows = F.max_pool2d(values, (1, 2 * half + 1), stride=1, padding=(0, half))
        rows = F.pad(rows, padded_rows, value=-math.inf)
        for offset in {dy, -dy}:
            result = torch.maximum(result, rows[..., reach + offset : reach + offset + height, :])
    return result


def _disk_half_width(dy: int, radius: float) -> int:
    """The largest integer dx with dx^2 + dy^2 <= radius^2."""
    half = int(math.floor(math.sqrt(max(radius**2 - dy**2, 0.0))))
    while (half + 1) ** 2 + dy**2 <= radius**2:
        half += 1
    while half > 0 and half**2 + dy**2 > radius**2:
        half -= 1
    return half


def _count_at_least(values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """For each of the sorted ``thresholds``, how many of ``values`` are >= it."""
    passed = torch.bucketize(values.float(), thresholds, right=True)  # thresholds <= value
    histogram = torch.bincount(passed, minlength=thresholds.numel() + 1)
    return histogram.flip(0).cumsum(0).flip(0)[1:]


class EdgeFScore(Metric):
    """Optimal-dataset-scale F-score (odsF) of edge maps, with a matching tolerance in pixels.

    For every threshold, a predicted edge pixel is a true positive when a
    ground-truth edge pixel lies within the tolerance (Euclidean distance), and
    a ground-truth pixel is recalled when a predicted edge pixel lies within it;
    counts are summed over the dataset and odsF is the best F = 2PR / (P + R)
    over the thresholds (higher is better). Unlike the BSDS benchmark's
    one-to-one bipartite matching (after non-maximum suppression of the
    prediction), this distance-based matching lets one ground-truth pixel
    justify several predicted ones, so thick predictions score higher here than
    in the official benchmark.

    Args:
        tolerance_px: matching distance in pixels.
        tolerance_frac: matching distance as a fraction of the image diagonal
            (0.011 is the NYUD convention); give exactly one of the two.
        thresholds: the score thresholds (sorted ascending here), or their
            number, evenly spaced in (0, 1). Scores are probabilities (apply a
            sigmoid to logits first).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        tolerance_px: float | None = None,
        tolerance_frac: float | None = None,
        thresholds: int | Sequence[float] = 99,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if (tolerance_px is None) == (tolerance_frac is None):
            raise ValueError(
                f"EdgeFScore: give exactly one of tolerance_px ({tolerance_px}) and "
                f"tolerance_frac ({tolerance_frac}), e.g. tolerance_frac=0.011"
            )
        tolerance = tolerance_px if tolerance_px is not None else tolerance_frac
        if tolerance < 0:
            raise ValueError(f"EdgeFScore: the tolerance must be >= 0, got {tolerance}")
        self.tolerance_px = tolerance_px
        self.tolerance_frac = tolerance_frac

        if isinstance(thresholds, int):
            if thresholds < 1:
                raise ValueError(f"EdgeFScore: thresholds must be >= 1, got {thresholds}")
            values = torch.arange(1, thresholds + 1, dtype=torch.float32) / (thresholds + 1)
        else:
            values = torch.as_tensor(list(thresholds), dtype=torch.float32).sort().values
            if values.ndim != 1 or values.numel() == 0:
                raise ValueError(f"EdgeFScore: thresholds must be a non-empty list, got {values}")
        self.register_buffer("thresholds", values, persistent=False)

        num = values.numel()
        for name in ("matched_prediction", "predicted", "recalled_target"):
            self.add_state(name, torch.zeros(num, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("target_edges", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def radius(self, height: int, width: int) -> float:
        """The matching distance in pixels for an image of this size."""
        if self.tolerance_px is not None:
            return float(self.tolerance_px)
        return self.tolerance_frac * math.hypot(height, width)

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        """Add N x 1 x H x W (or N x H x W) edge probabilities and {0, 1} targets."""
        _check_same_shape(scores, target, "EdgeFScore")
        if scores.ndim == 3:
            scores, target = scores[:, None], target[:, None]
        if scores.ndim != 4 or scores.shape[1] != 1:
            raise ValueError(
                f"EdgeFScore: expected N x 1 x H x W or N x H x W, got {tuple(scores.shape)}"
            )
        radius = self.radius(*scores.shape[-2:])
        scores = scores.float()
        edges = target > 0.5
        near_edges = disk_max_filter(edges.float(), radius) > 0.5
        # the best score within reach: a target pixel is recalled at threshold t iff it is >= t
        best_nearby = disk_max_filter(scores, radius)

        self.target_edges += edges.sum()
        self.predicted += _count_at_least(scores.flatten(), self.thresholds)
        self.matched_prediction += _count_at_least(scores[near_edges], self.thresholds)
        self.recalled_target += _count_at_least(best_nearby[edges], self.thresholds)

    def precision_recall(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Precision and recall at every threshold (0 where nothing was predicted or labelled)."""
        precision = self.matched_prediction.double() / self.predicted.clamp(min=1)
        recall = self.recalled_target.double() / self.target_edges.clamp(min=1)
        return precision, recall

    def compute(self) -> torch.Tensor:
        """odsF: the best dataset-level F-score over the thresholds."""
        precision, recall = self.precision_recall()
        total = precision + recall
        f_score = torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12), 0.0)
        return f_score.max().float()


class MaskedL1(Metric):
    """Mean absolute error over the finite target values (NaN marks ignored ones).

    Averaged per element over the dataset: every channel of every pixel with a
    finite target counts once. Lower is better; NaN when nothing was valid.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sum_error", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of predictions and targets of the same shape."""
        _check_same_shape(prediction, target, "MaskedL1")
        valid = torch.isfinite(target)
        self.sum_error += (prediction[valid].double() - target[valid].double()).abs().sum()
        self.count += valid.sum()

    def compute(self) -> torch.Tensor:
        """The dataset-level mean absolute error."""
        if self.count == 0:
            return _nan()
        return (self.sum_error / self.count).float()
