"""Dense task losses: invalid pixels are ignored, empty batches give a finite zero, shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtl.tasks.dense import (
    DepthTask,
    EdgeTask,
    NormalsTask,
    OffsetTask,
    RegressionTask,
    SegmentationTask,
)

N, H, W = 2, 4, 5


def _segmentation_target() -> torch.Tensor:
    target = torch.randint(0, 3, (N, H, W), generator=torch.Generator().manual_seed(0))
    target[0, 0, 0] = 255
    return target


def _depth_target() -> torch.Tensor:
    target = torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(1)) + 0.5
    target[0, 0, 0, 0] = 0.0
    return target


def _normals_target() -> torch.Tensor:
    target = F.normalize(
        torch.randn(N, 3, H, W, generator=torch.Generator().manual_seed(2)), dim=1
    )
    target[0, :, 0, 0] = 0.0
    return target


def _edge_target() -> torch.Tensor:
    target = (torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    target[0, 0, 0, 0] = float("nan")
    return target


def _regression_target(channels: int) -> torch.Tensor:
    target = torch.randn(N, channels, H, W, generator=torch.Generator().manual_seed(4))
    target[0, :, 0, 0] = float("nan")
    return target


# (task, target, how to make every pixel of the target invalid)
CASES = [
    (SegmentationTask("semseg", num_classes=3), _segmentation_target, lambda t: t.fill_(255)),
    (DepthTask("depth"), _depth_target, lambda t: t.zero_()),
    (NormalsTask("normals"), _normals_target, lambda t: t.zero_()),
    (NormalsTask("normals", loss_type="cosine"), _normals_target, lambda t: t.zero_()),
    (EdgeTask("edge"), _edge_target, lambda t: t.fill_(float("nan"))),
    (
        RegressionTask("keypoints", channels=1),
        lambda: _regression_target(1),
        lambda t: t.fill_(float("nan")),
    ),
    (OffsetTask("offsets"), lambda: _regression_target(2), lambda t: t.fill_(float("nan"))),
]
IDS = [f"{type(task).__name__}-{getattr(task, 'loss_type', '')}" for task, _, _ in CASES]


def _prediction(task, seed: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N, task.out_channels, H, W, generator=generator).requires_grad_()


@pytest.mark.parametrize(("task", "make_target", "invalidate"), CASES, ids=IDS)
def test_invalid_pixel_prediction_does_not_change_loss(task, make_target, invalidate) -> None:
    target = make_target()
    prediction = _prediction(task)
    loss = task.loss(prediction, target)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0

    changed = prediction.detach().clone()
    changed[0, :, 0, 0] += 7.0  # pixel (0, 0) of image 0 is invalid in every target
    assert torch.equal(task.loss(changed, target), loss.detach())

    loss.backward()
    assert torch.isfinite(prediction.grad).all()
    assert torch.all(prediction.grad[0, :, 0, 0] == 0)


@pytest.mark.parametrize(("task", "make_target", "invalidate"), CASES, ids=IDS)
def test_batch_without_valid_pixels_gives_zero_with_grad(task, make_target, invalidate) -> None:
    target = invalidate(make_target())
    prediction = _prediction(task)
    loss = task.loss(prediction, target)
    assert loss.item() == 0.0
    loss.backward()
    assert prediction.grad is not None and torch.all(prediction.grad == 0)


@pytest.mark.parametrize(("task", "make_target", "invalidate"), CASES, ids=IDS)
def test_metrics_report_the_main_metric(task, make_target, invalidate) -> None:
    assert task.dense
    metrics = task.make_metrics()
    task.update_metrics(metrics, _prediction(task).detach(), make_target())
    result = metrics.compute()
    assert task.main_metric in result
    assert torch.isfinite(result[task.main_metric])


def test_out_channels() -> None:
    assert SegmentationTask("s", num_classes=40).out_channels == 40
    assert DepthTask("d").out_channels == 1
    assert NormalsTask("n").out_channels == 3
    assert EdgeTask("e").out_channels == 1
    assert RegressionTask("r", channels=3).out_channels == 3
    assert OffsetTask("o").out_channels == 2


def test_segmentation_loss_is_cross_entropy_over_labelled_pixels() -> None:
    target = _segmentation_target()
    prediction = _prediction(SegmentationTask("s", num_classes=3)).detach()
    valid = target != 255
    logits = prediction.movedim(1, -1)[valid]
    expected = -torch.log_softmax(logits, dim=-1).gather(1, target[valid][:, None]).mean()
    assert torch.allclose(SegmentationTask("s", num_classes=3).loss(prediction, target), expected)


def test_depth_loss_hand_example() -> None:
    prediction = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    target = torch.tensor([[[[2.0, 0.0, 2.5]]]])
    assert math.isclose(float(DepthTask("d").loss(prediction, target)), (1.0 + 0.5) / 2)


def test_normals_loss_hand_example() -> None:
    prediction = torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 2.0]]).view(1, 3, 1, 2)
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    # pixel 0: (1,0,0) vs (1,0,0) -> 0; pixel 1: (0,0,1) vs (0,1,0) -> L1 2, cosine 1
    assert math.isclose(float(NormalsTask("n").loss(prediction, target)), 1.0)
    assert math.isclose(float(NormalsTask("n", loss_type="cosine").loss(prediction, target)), 0.5)


def test_edge_loss_balances_positives_by_the_negative_fraction() -> None:
    prediction = torch.tensor([[[[0.5, -1.0, 2.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    beta = 3 / 4  # fraction of negatives weights the positives
    positive = -math.log(torch.sigmoid(torch.tensor(0.5)).item())
    negatives = sum(-math.log(1 - torch.sigmoid(torch.tensor(x)).item()) for x in (-1.0, 2.0, 0.0))
    expected = (beta * positive + (1 - beta) * negatives) / 4
    assert math.isclose(float(EdgeTask("e").loss(prediction, target)), expected, rel_tol=1e-6)

    fixed = (0.95 * positive + 0.05 * negatives) / 4
    assert math.isclose(
        float(EdgeTask("e", pos_weight=0.95).loss(prediction, target)), fixed, rel_tol=1e-6
    )


def test_offset_task_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="channels=3"):
        OffsetTask("o", channels=3)


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="upsample"):
        DepthTask("d").loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4))
