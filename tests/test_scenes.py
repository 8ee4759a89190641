"""The procedural scene renderer: exact geometry, determinism, NYUD_MT files, reading back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mtl.data.scenes import (
    BOX,
    CYLINDER,
    FLOOR,
    NUM_CLASSES,
    SPHERE,
    VOID,
    WALL,
    Box,
    Camera,
    Cylinder,
    Room,
    Scene,
    ScenesDataModule,
    Sphere,
    render,
    render_scenes,
    sample_scene,
    scene_rng,
)

SIZE = (33, 33)  # odd, so the centre pixel's ray is the optical axis


def _centre(array: np.ndarray):
    return array[SIZE[0] // 2, SIZE[1] // 2]


def _camera_rays(camera: Camera, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent pinhole geometry: x_c and y_c of each pixel centre's ray at depth 1."""
    focal = (width / 2) / math.tan(math.radians(camera.fov_deg) / 2)
    rows, columns = np.mgrid[0:height, 0:width]
    return (columns + 0.5 - width / 2) / focal, -(rows + 0.5 - height / 2) / focal


def test_empty_room_depth_and_normals_match_the_planes() -> None:
    # camera 1.5 m above the floor, 9 m from the back wall, 3 m from each side wall
    room = Room(width=6.0, depth=10.0, height=3.0)
    camera = Camera(position=(0.0, 1.5, -1.0))
    result = render(Scene(room, camera), SIZE)
    x, y = _camera_rays(camera, *SIZE)

    candidates = {  # depth along the axis at which each pixel's ray meets each plane
        "floor": np.where(y < 0, 1.5 / np.maximum(-y, 1e-12), np.inf),
        "side": np.where(x != 0, 3.0 / np.maximum(np.abs(x), 1e-12), np.inf),
        "back": np.full(x.shape, 9.0),
    }
    for name in ("side", "back"):  # walls end 3 m up: above that the ray meets the sky
        height = 1.5 + y * np.where(np.isfinite(candidates[name]), candidates[name], 0.0)
        candidates[name] = np.where(height <= 3.0, candidates[name], np.inf)
    stacked = np.stack(list(candidates.values()))
    expected = stacked.min(axis=0)
    which = stacked.argmin(axis=0)
    sky = ~np.isfinite(expected)

    assert sky.any() and (~sky).any()
    np.testing.assert_allclose(result.depth[~sky], expected[~sky], rtol=1e-5)
    assert np.all(result.depth[sky] == 0) and np.all(result.normals[sky] == 0)
    assert np.all(result.semseg[sky] == VOID)
    assert np.all(result.semseg[~sky & (which == 0)] == FLOOR)
    assert np.all(result.semseg[~sky & (which > 0)] == WALL)

    # x right, y up, z towards the viewer
    np.testing.assert_allclose(
        result.normals[~sky & (which == 0)], [[0, 1, 0]] * np.sum(~sky & (which == 0)), atol=1e-6
    )
    np.testing.assert_allclose(
        result.normals[~sky & (which == 2)], [[0, 0, 1]] * np.sum(~sky & (which == 2)), atol=1e-6
    )
    left = ~sky & (which == 1) & (x < 0)
    right = ~sky & (which == 1) & (x > 0)
    assert left.any() and right.any()
    np.testing.assert_allclose(result.normals[left], [[1, 0, 0]] * left.sum(), atol=1e-6)
    np.testing.assert_allclose(result.normals[right], [[-1, 0, 0]] * right.sum(), atol=1e-6)


def test_camera_looking_down_at_the_floor() -> None:
    room = Room(width=20.0, depth=20.0, height=3.0)
    camera = Camera(position=(0.0, 1.5, -5.0), pitch=math.radians(-30))
    result = render(Scene(room, camera), SIZE)
    assert _centre(result.semseg) == FLOOR
    # the optical axis meets the floor 1.5 / sin(30 deg) = 3 m away
    assert _centre(result.depth) == pytest.approx(3.0, rel=1e-6)
    # the floor normal, seen from above, points up and back at the camera
    np.testing.assert_allclose(
        _centre(result.normals), [0, math.cos(math.radians(30)), 0.5], atol=1e-6
    )


def test_camera_turned_left_faces_the_left_wall() -> None:
    room = Room(width=6.0, depth=10.0, height=3.0)
    camera = Camera(position=(1.0, 1.5, -5.0), yaw=math.pi / 2)  # positive yaw turns left
    result = render(Scene(room, camera), SIZE)
    assert _centre(result.semseg) == WALL
    assert _centre(result.depth) == pytest.approx(4.0, rel=1e-6)  # from x = 1 to the wall at -3
    np.testing.assert_allclose(_centre(result.normals), [0, 0, 1], atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "label", "depth"),
    [
        (Sphere(center=(0.0, 1.0, -5.0), radius=1.0), SPHERE, 4.0),
        (Box(center=(0.0, 1.0, -5.0), half_size=(0.5, 1.0, 0.3)), BOX, 4.7),
        (Box(center=(0.0, 1.0, -5.0), half_size=(0.5, 1.0, 0.3), yaw=math.pi / 2), BOX, 4.5),
        (Cylinder(x=0.0, z=-5.0, radius=0.5, height=2.0), CYLINDER, 4.5),
    ],
    ids=["sphere", "box", "turned-box", "cylinder"],
)
def test_object_on_the_optical_axis(shape, label: int, depth: float) -> None:
    scene = Scene(
        Room(width=8.0, depth=10.0, height=3.0), Camera(position=(0.0, 1.0, 0.0)), [shape]
    )
    result = render(scene, SIZE)
    assert _centre(result.semseg) == label
    assert _centre(result.depth) == pytest.approx(depth, rel=1e-6)
    np.testing.assert_allclose(_centre(result.normals), [0, 0, 1], atol=1e-6)


def test_cylinder_top_seen_from_straight_above() -> None:
    cylinder = Cylinder(x=0.0, z=-5.0, radius=0.5, height=2.0)
    camera = Camera(position=(0.0, 2.75, -5.0), pitch=-math.pi / 2)
    result = render(Scene(Room(width=8.0, depth=10.0, height=3.0), camera, [cylinder]), SIZE)
    assert _centre(result.semseg) == CYLINDER
    assert _centre(result.depth) == pytest.approx(0.75, rel=1e-6)
    np.testing.assert_allclose(_centre(result.normals), [0, 0, 1], atol=1e-6)


def test_sphere_silhouette_and_edges() -> None:
    sphere = Sphere(center=(0.0, 1.0, -5.0), radius=1.0)
    scene = Scene(
        Room(width=40.0, depth=30.0, height=3.0), Camera(position=(0.0, 1.0, 0.0)), [sphere]
    )
    result = render(scene, SIZE)
    # a pixel sees the sphere when its ray passes within 1 m of the centre
    x, y = _camera_rays(scene.camera, *SIZE)
    distance = 5.0 * np.sqrt(x**2 + y**2) / np.sqrt(1 + x**2 + y**2)
    np.testing.assert_array_equal(result.semseg == SPHERE, distance < 1.0)
    # edges: the sphere's outermost pixels (the nearer side of the boundary), nothing inside
    sphere = result.semseg == SPHERE
    padded = np.pad(sphere, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = result.edge.astype(bool)
    np.testing.assert_array_equal(edge & sphere, sphere & ~interior)
    assert set(np.unique(result.edge)) <= {0.0, 1.0}


def test_random_scenes_are_consistent() -> None:
    for index in range(20):
        rng = scene_rng(3, "train", index)
        scene = sample_scene(rng)
        result = render(scene, (24, 32), rng)
        hit = result.semseg != VOID
        assert result.semseg.min() >= VOID and result.semseg.max() < NUM_CLASSES
        assert np.all(result.depth[hit] > 0) and np.all(result.depth[~hit] == 0)
        np.testing.assert_allclose(np.linalg.norm(result.normals[hit], axis=-1), 1.0, atol=1e-5)
        assert np.all(result.normals[~hit] == 0)
        # every normal faces the camera: it points against the pixel's ray
        x, y = _camera_rays(scene.camera, 24, 32)
        rays = np.stack([x, y, -np.ones_like(x)], axis=-1)
        assert np.all(np.sum(result.normals * rays, axis=-1)[hit] < 0)
        assert set(np.unique(result.edge)) <= {0.0, 1.0}
        assert result.image.dtype == np.uint8 and result.image.shape == (24, 32, 3)


def test_rendering_is_deterministic_by_seed() -> None:
    def draw(seed: int, index: int):
        rng = scene_rng(seed, "val", index)
        return render(sample_scene(rng), (16, 16), rng)

    first, again, other = draw(0, 5), draw(0, 5), draw(1, 5)
    for name in ("image", "semseg", "depth", "normals", "edge"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.depth, other.depth)
    assert not np.array_equal(first.depth, draw(0, 6).depth)


def _read_all(folder) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_written_files_are_nyud_mt(tmp_path) -> None:
    size = (12, 20)
    folder = render_scenes(tmp_path / "a", num_train=3, num_val=2, size=size, seed=4)
    train_ids = (folder / "gt_sets" / "train.txt").read_text().split()
    val_ids = (folder / "gt_sets" / "val.txt").read_text().split()
    assert len(train_ids) == 3 and len(val_ids) == 2 and not set(train_ids) & set(val_ids)

    for split, ids in (("train", train_ids), ("val", val_ids)):
        for index, image_id in enumerate(ids):
            rng = scene_rng(4, split, index)
            expected = render(sample_scene(rng), size, rng)
            with Image.open(folder / "images" / f"{image_id}.jpg") as image:
                assert image.format == "JPEG" and image.mode == "RGB"
                assert image.size == (size[1], size[0])
            with Image.open(folder / "segmentation" / f"{image_id}.png") as label:
                assert label.format == "PNG" and label.mode == "L"
                stored = np.array(label)
            assert stored.dtype == np.uint8 and stored.max() <= NUM_CLASSES
            np.testing.assert_array_equal(stored, expected.semseg + 1)  # void 0, class k -> k + 1

            depth = np.load(folder / "depth" / f"{image_id}.npy")
            normals = np.load(folder / "normals" / f"{image_id}.npy")
            edge = np.load(folder / "edge" / f"{image_id}.npy")
            assert depth.dtype == np.float32 and depth.shape == size
            assert normals.dtype == np.float32 and normals.shape == (*size, 3)
            assert edge.shape == size and set(np.unique(edge)) <= {0.0, 1.0}
            assert normals.min() >= -1 and normals.max() <= 1
            np.testing.assert_array_equal(depth, expected.depth)
            np.testing.assert_array_equal(normals, expected.normals)
            np.testing.assert_array_equal(edge, expected.edge)

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["size"] == list(size) and manifest["seed"] == 4

    # the same settings again: nothing is rewritten; another root gives identical bytes
    stamps = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}
    assert render_scenes(tmp_path / "a", 3, 2, size, 4) == folder
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*")} == stamps
    copy = render_scenes(tmp_path / "b", 3, 2, size, 4)
    assert _read_all(copy) == _read_all(folder)
    assert _read_all(render_scenes(tmp_path / "b", 3, 2, size, 5)) != _read_all(folder)


def test_an_incomplete_set_is_rendered_again(tmp_path) -> None:
    folder = render_scenes(tmp_path, 2, 1, (8, 8), 0)
    (folder / "depth" / "train_00001.npy").unlink()
    assert render_scenes(tmp_path, 2, 1, (8, 8), 0) == folder
    assert (folder / "depth" / "train_00001.npy").is_file()


def test_reading_back_through_the_nyud_loader(tmp_path) -> None:
    size = (16, 24)
    data = ScenesDataModule(
        root=tmp_path,
        num_train=3,
        num_val=2,
        size=size,
        seed=7,
        augment=False,
        batch_size=2,
        targets=["semseg", "depth", "normals", "edge"],
    )
    data.prepare_data()
    data.setup("fit")
    assert len(data.train_set) == 3 and len(data.val_set) == 2
    assert data.input_size == size

    for index in range(2):
        rng = scene_rng(7, "val", index)
        expected = render(sample_scene(rng), size, rng)
        sample = data.val_set[index]
        semseg = np.where(expected.semseg == VOID, 255, expected.semseg)
        np.testing.assert_array_equal(sample["semseg"].numpy(), semseg)
        np.testing.assert_array_equal(sample["depth"][0].numpy(), expected.depth)
        np.testing.assert_allclose(sample["normals"].numpy(), expected.normals.transpose(2, 0, 1))
        np.testing.assert_array_equal(sample["edge"][0].numpy(), expected.edge)
        assert sample["image"].shape == (3, *size) and sample["image"].dtype == torch.float32

    batch = next(iter(data.train_dataloader()))
    assert batch["semseg"].dtype == torch.int64 and batch["semseg"].shape == (2, *size)
    assert batch["depth"].shape == (2, 1, *size) and batch["normals"].shape == (2, 3, *size)


def test_perfect_predictions_score_perfectly_on_rendered_batches(tmp_path) -> None:
    from mtl.tasks.dense import DepthTask, EdgeTask, NormalsTask, SegmentationTask

    data = ScenesDataModule(root=tmp_path, num_train=2, num_val=4, size=(20, 20), augment=False)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    labels = batch["semseg"].clamp(max=NUM_CLASSES - 1)  # the ignored sky gets any class
    perfect = {
        "semseg": (
            SegmentationTask("semseg", NUM_CLASSES),
            10.0 * F.one_hot(labels, NUM_CLASSES).movedim(-1, 1).float(),
        ),
        "depth": (DepthTask("depth"), batch["depth"]),
        "normals": (NormalsTask("normals"), batch["normals"]),
        "edge": (EdgeTask("edge", tolerance_px=0), 20.0 * batch["edge"] - 10.0),
    }
    ideal = {"semseg": 1.0, "depth": 0.0, "normals": 0.0, "edge": 1.0}
    for name, (task, prediction) in perfect.items():
        metrics = task.make_metrics()
        task.update_metrics(metrics, prediction, batch[name])
        assert float(metrics.compute()[task.main_metric]) == pytest.approx(ideal[name], abs=0.05)


def test_the_data_config_composes_and_instantiates(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    monkeypatch.setenv("MTL_DATA", str(tmp_path))
    config_dir = str(Path(__file__).resolve().parents[1] / "conf")
    overrides = [
        "data=scenes",
        "data.num_train=2",
        "data.num_val=2",
        "data.num_workers=0",
        "data.targets=[semseg,depth]",
    ]
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        config = compose(config_name="config", overrides=overrides)
    data = instantiate(config.data)
    assert isinstance(data, ScenesDataModule)
    data.prepare_data()
    data.setup("fit")
    assert data.root.parent == tmp_path / "scenes"
    assert set(data.val_set[0]) == {"image", "semseg", "depth"}
    assert data.val_set[0]["image"].shape == (3, *config.data.input_size)
    assert list(config.data.input_size) == list(config.data.size)
