"""Dense-task metrics against hand-computed examples and numpy/scipy brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from mtl.tasks.dense import SegmentationTask
from mtl.tasks.metrics import (
    DepthMetrics,
    EdgeFScore,
    MaskedL1,
    NormalAngleMetrics,
    disk_max_filter,
)


def _close(value: torch.Tensor, expected: float, tol: float = 1e-5) -> bool:
    return abs(float(value) - expected) <= tol * max(1.0, abs(expected))


# --- depth ---------------------------------------------------------------------------------


def test_depth_hand_example() -> None:
    prediction = torch.tensor([2.0, 4.0, 1.0, 5.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 4.0, 2.0, 0.0]).view(1, 1, 2, 2)  # last pixel invalid
    metric = DepthMetrics()
    metric.update(prediction, target)
    result = metric.compute()

    assert _close(result["rmse"], math.sqrt(2 / 3))
    assert _close(result["abs_rel"], (1 / 1 + 0 + 1 / 2) / 3)
    assert _close(result["log_rmse"], math.log(2) * math.sqrt(2 / 3))
    assert _close(result["delta1"], 1 / 3)


def test_depth_is_averaged_per_pixel_not_per_image() -> None:
    # image A: one valid pixel, error 2; image B: four valid pixels, error 0
    metric = DepthMetrics()
    metric.update(torch.tensor([[[[3.0, 9.0]]]]), torch.tensor([[[[1.0, 0.0]]]]))
    metric.update(torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), 2.0))
    per_pixel = math.sqrt(4 / 5)
    per_image = (2.0 + 0.0) / 2
    assert _close(metric.compute()["rmse"], per_pixel)
    assert not _close(metric.compute()["rmse"], per_image)


def test_depth_random_against_numpy() -> None:
    rng = np.random.default_rng(0)
    metric = DepthMetrics()
    predictions, targets = [], []
    for _ in range(3):
        target = rng.uniform(0.5, 8.0, (2, 1, 7, 9)).astype(np.float32)
        target[rng.random(target.shape) < 0.3] = 0.0
        target[0, 0, 0, 0] = np.nan
        prediction = (target + rng.normal(0, 0.5, target.shape)).astype(np.float32)
        prediction[0, 0, 1, 1] = -1.0  # a non-positive raw prediction
        metric.update(torch.from_numpy(prediction), torch.from_numpy(target))
        predictions.append(prediction)
        targets.append(target)

    p = np.concatenate([x.ravel() for x in predictions]).astype(np.float64)
    t = np.concatenate([x.ravel() for x in targets]).astype(np.float64)
    valid = np.isfinite(t) & (t > 0)
    p, t = p[valid], t[valid]
    clamped = np.maximum(p, 1e-3)
    result = metric.compute()
    assert _close(result["rmse"], np.sqrt(np.mean((p - t) ** 2)))
    assert _close(result["abs_rel"], np.mean(np.abs(p - t) / t))
    assert _close(result["log_rmse"], np.sqrt(np.mean((np.log(clamped) - np.log(t)) ** 2)))
    assert _close(result["delta1"], np.mean(np.maximum(clamped / t, t / clamped) < 1.25))


def test_depth_without_valid_pixels_is_nan() -> None:
    metric = DepthMetrics()
    metric.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert math.isnan(float(metric.compute()["rmse"]))


# --- normals -------------------------------------------------------------------------------


def _normal_batch(vectors: list[tuple[float, float, float]]) -> torch.Tensor:
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 3, 1, len(vectors))


def test_normal_angles_hand_example() -> None:
    prediction = _normal_batch(
        [(1, 0, 0), (1, 1, 0), (2, 0, 0), (1, math.tan(math.radians(10)), 0), (0, 1, 0)]
    )
    target = _normal_batch([(0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0), (0, 0, 0)])
    # angles 90, 45, 0, 10; the last pixel has an all-zero target and is ignored
    metric = NormalAngleMetrics()
    metric.update(prediction, target)
    result = metric.compute()
    assert "rmse" not in result
    assert _close(result["mean_angle"], (90 + 45 + 0 + 10) / 4, 1e-4)
    assert _close(result["median_angle"], (10 + 45) / 2, 1e-4)
    assert _close(result["within_11_25"], 50.0)
    assert _close(result["within_22_5"], 50.0)
    assert _close(result["within_30"], 50.0)

    # the histogram median of an odd count lies within one bin of the middle angle (45)
    binned = NormalAngleMetrics(median_bin_deg=0.01)
    binned.update(prediction, target)
    binned.update(_normal_batch([(0, 1, 0)]), _normal_batch([(0, 0, 1)]))  # one more 90
    assert abs(float(binned.compute()["median_angle"]) - 45) <= 0.01


def test_normal_angles_random_against_numpy() -> None:
    rng = np.random.default_rng(1)
    exact, binned = NormalAngleMetrics(), NormalAngleMetrics(median_bin_deg=0.01)
    all_angles = []
    for _ in range(3):
        target = rng.normal(size=(2, 3, 6, 5)).astype(np.float32)
        target /= np.linalg.norm(target, axis=1, keepdims=True)
        target[:, :, 0, :2] = 0.0  # invalid pixels
        prediction = (target + rng.normal(0, 0.4, target.shape)).astype(np.float32)
        for metric in (exact, binned):
            metric.update(torch.from_numpy(prediction), torch.from_numpy(target))

        p = np.moveaxis(prediction, 1, -1).reshape(-1, 3).astype(np.float64)
        t = np.moveaxis(target, 1, -1).reshape(-1, 3).astype(np.float64)
        valid = np.any(t != 0, axis=1)
        p = p[valid] / np.linalg.norm(p[valid], axis=1, keepdims=True)
        t = t[valid]
        cosine = np.clip(np.sum(p * t, axis=1), -1, 1)
        all_angles.append(np.degrees(np.arccos(cosine)))

    angles = np.concatenate(all_angles)
    middle = np.sort(angles)[len(angles) // 2 - 1 : len(angles) // 2 + 1]
    assert len(angles) % 2 == 0
    assert abs(float(exact.compute()["median_angle"]) - np.median(angles)) < 1e-4
    # the histogram median lies between the two middle angles, up to one bin width
    assert middle[0] - 0.01 <= float(binned.compute()["median_angle"]) <= middle[1] + 0.01
    for metric in (exact, binned):
        result = metric.compute()
        assert abs(float(result["mean_angle"]) - angles.mean()) < 1e-3
        for key, threshold in (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30)):
            assert _close(result[key], 100 * np.mean(angles < threshold), 1e-4)


# --- edges ---------------------------------------------------------------------------------


def test_edge_fscore_hand_example() -> None:
    target = torch.zeros(1, 1, 5, 5)
    target[0, 0, :, 2] = 1  # a vertical edge in column 2
    scores = torch.zeros(1, 1, 5, 5)
    scores[0, 0, :, 3] = 0.9  # predicted one pixel to the right
    scores[0, 0, 0, 0] = 0.6  # a false positive two pixels from the edge

    metric = EdgeFScore(tolerance_px=1, thresholds=[0.5, 0.8])
    metric.update(scores, target)
    precision, recall = metric.precision_recall()
    assert torch.allclose(precision, torch.tensor([5 / 6, 1.0], dtype=torch.float64))
    assert torch.allclose(recall, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert _close(metric.compute(), 1.0)

    # without tolerance the shifted edge matches nothing
    strict = EdgeFScore(tolerance_px=0, thresholds=[0.5, 0.8])
    strict.update(scores, target)
    assert _close(strict.compute(), 0.0)


def test_edge_fscore_tolerance_is_euclidean() -> None:
    target = torch.zeros(1, 1, 5, 5)
    target[0, 0, 1, 1] = 1
    scores = torch.zeros(1, 1, 5, 5)
    scores[0, 0, 2, 2] = 1.0  # diagonal neighbour, distance sqrt(2)
    for tolerance, expected in ((1.0, 0.0), (1.5, 1.0)):
        metric = EdgeFScore(tolerance_px=tolerance, thresholds=[0.5])
        metric.update(scores, target)
        assert _close(metric.compute(), expected)


def test_edge_fscore_tolerance_fraction_of_diagonal() -> None:
    metric = EdgeFScore(tolerance_frac=0.011)
    assert _close(metric.radius(480, 640), 0.011 * 800)
    with pytest.raises(ValueError, match="exactly one"):
        EdgeFScore()
    with pytest.raises(ValueError, match="exactly one"):
        EdgeFScore(tolerance_px=1, tolerance_frac=0.01)


def test_edge_fscore_random_against_scipy_distance_transform() -> None:
    rng = np.random.default_rng(2)
    thresholds = np.array([0.2, 0.5, 0.7, 0.9])
    radius = 2.3
    metric = EdgeFScore(tolerance_px=radius, thresholds=thresholds.tolist())
    matched = np.zeros(len(thresholds))
    predicted = np.zeros(len(thresholds))
    recalled = np.zeros(len(thresholds))
    target_edges = 0
    for _ in range(3):
        target = (rng.random((2, 1, 16, 12)) < 0.08).astype(np.float32)
        scores = np.clip(
            0.6 * ndimage.uniform_filter(target, size=(1, 1, 3, 3))
            + 0.5 * rng.random(target.shape),
            0,
            1,
        ).astype(np.float32)
        metric.update(torch.from_numpy(scores), torch.from_numpy(target))

        for image in range(target.shape[0]):
            gt = target[image, 0] > 0.5
            target_edges += gt.sum()
            distance_to_gt = (
                ndimage.distance_transform_edt(~gt) if gt.any() else np.full(gt.shape, np.inf)
            )
            for k, threshold in enumerate(thresholds):
                pred = scores[image, 0] >= threshold
                distance_to_pred = (
                    ndimage.distance_transform_edt(~pred)
                    if pred.any()
                    else np.full(gt.shape, np.inf)
                )
                predicted[k] += pred.sum()
                matched[k] += (pred & (distance_to_gt <= radius)).sum()
                recalled[k] += (gt & (distance_to_pred <= radius)).sum()

    precision = matched / np.maximum(predicted, 1)
    recall = recalled / max(target_edges, 1)
    total = precision + recall
    f_score = np.where(total > 0, 2 * precision * recall / np.maximum(total, 1e-12), 0)
    assert _close(metric.compute(), f_score.max())


# --- masked L1 -----------------------------------------------------------------------------


def test_masked_l1_hand_example() -> None:
    metric = MaskedL1()
    metric.update(
        torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, float("nan")], [5.0, 4.0]])
    )
    metric.update(torch.tensor([10.0]), torch.tensor([7.0]))
    assert _close(metric.compute(), (1 + 2 + 0 + 3) / 4)


# --- mIoU (torchmetrics) -------------------------------------------------------------------


def _one_hot_logits(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1).float()


def test_miou_excludes_classes_absent_from_prediction_and_target() -> None:
    task = SegmentationTask("semseg", num_classes=4)
    metrics = task.make_metrics()
    target = torch.tensor([[[0, 0, 1, 1, 255]]])
    prediction = torch.tensor([[[0, 1, 1, 1, 3]]])  # the ignored pixel's prediction is irrelevant
    task.update_metrics(metrics, _one_hot_logits(prediction, 4), target)
    result = metrics.compute()
    # class 0: 1 / 2, class 1: 2 / 3; classes 2 and 3 appear nowhere and are left out
    assert _close(result["miou"], (1 / 2 + 2 / 3) / 2)
    assert _close(result["pixel_acc"], 3 / 4)


def test_miou_counts_a_class_predicted_but_never_labelled_as_zero() -> None:
    task = SegmentationTask("semseg", num_classes=4)
    metrics = task.make_metrics()
    target = torch.tensor([[[0, 0, 1, 1]]])
    prediction = torch.tensor([[[0, 2, 1, 1]]])
    task.update_metrics(metrics, _one_hot_logits(prediction, 4), target)
    # class 0: 1 / 2, class 1: 1, class 2: 0 (false positive only); class 3 left out
    assert _close(metrics.compute()["miou"], (1 / 2 + 1 + 0) / 3)


def test_miou_random_against_numpy_confusion_matrix() -> None:
    rng = np.random.default_rng(3)
    num_classes = 6
    task = SegmentationTask("semseg", num_classes=num_classes)
    metrics = task.make_metrics()
    confusion = np.zeros((num_classes, num_classes))
    for _ in range(3):
        target = rng.integers(0, 4, (2, 5, 7))  # classes 4 and 5 never labelled
        target[rng.random(target.shape) < 0.2] = 255
        logits = rng.normal(size=(2, num_classes, 5, 7)).astype(np.float32)
        logits[:, 5] -= 100  # class 5 never predicted either
        task.update_metrics(metrics, torch.from_numpy(logits), torch.from_numpy(target))
        predicted = logits.argmax(1)
        valid = target != 255
        np.add.at(confusion, (target[valid], predicted[valid]), 1)

    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    assert not present[5] and present[4]
    result = metrics.compute()
    assert _close(result["miou"], np.mean(intersection[present] / union[present]))
    assert _close(result["pixel_acc"], intersection.sum() / confusion.sum())


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.0, 2.9, 4.0])
def test_disk_max_filter_against_scipy(radius: float) -> None:
    values = np.random.default_rng(4).random((2, 1, 11, 13)).astype(np.float32)
    reach = int(radius)
    offsets = np.arange(-reach, reach + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    expected = np.stack(
        [
            ndimage.maximum_filter(v[0], footprint=disk, mode="constant", cval=-np.inf)
            for v in values
        ]
    )[:, None]
    result = disk_max_filter(torch.from_numpy(values), radius).numpy()
    np.testing.assert_array_equal(result, expected)


def test_states_merge_like_one_process_saw_everything() -> None:
    """Two processes' states, reduced with the metrics' dist_reduce_fx, equal one pass."""
    rng = np.random.default_rng(5)
    depth = torch.from_numpy(rng.uniform(0, 5, (4, 1, 6, 6)).astype(np.float32))
    normals = torch.from_numpy(rng.normal(size=(4, 3, 6, 6)).astype(np.float32))
    edges = torch.from_numpy((rng.random((4, 1, 6, 6)) < 0.2).astype(np.float32))
    scores = torch.from_numpy(rng.random((4, 1, 6, 6)).astype(np.float32))
    cases = [
        (DepthMetrics, depth + 0.3, depth),
        (NormalAngleMetrics, normals + 0.5, normals),
        (lambda: EdgeFScore(tolerance_px=1.5, thresholds=9), scores, edges),
        (MaskedL1, depth * 2, depth),
    ]
    for make, prediction, target in cases:
        single, first, second = make(), make(), make()
        single.update(prediction, target)
        first.update(prediction[:1], target[:1])
        second.update(prediction[1:], target[1:])
        first.merge_state(second)
        expected, merged = single.compute(), first.compute()
        if isinstance(expected, dict):
            for key in expected:
                assert torch.allclose(merged[key], expected[key]), key
        else:
            assert torch.allclose(merged, expected)
