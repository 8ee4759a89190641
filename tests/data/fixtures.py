"""Writers of tiny datasets in exactly the real on-disk formats, for tests.

Each ``write_*`` function fills a temporary folder and returns the path the
data config's ``root`` should point at. Contents are random but seeded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mtl.data.celeba import ATTRIBUTES
from mtl.data.taskonomy import TINY_BUILDINGS

CAMERA = {
    "extrinsic": {
        "baseline": 0.209313,
        "pitch": 0.038,
        "roll": 0.0,
        "x": 1.7,
        "y": 0.1,
        "yaw": -0.0195,
        "z": 1.22,
    },
    "intrinsic": {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137},
}


def save_png(path: Path, array: np.ndarray) -> None:
    """Write ``array`` losslessly: uint8 as L or RGB, uint16 as a 16-bit (I;16) PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"save_png takes uint8 or uint16 arrays, got {array.dtype} for {path}")
    Image.fromarray(array).save(path)


def save_jpg(path: Path, array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as a JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def _rgb(rng: np.random.Generator, size: Sequence[int]) -> np.ndarray:
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def _unit_normals(rng: np.random.Generator, size: Sequence[int]) -> np.ndarray:
    normals = rng.normal(size=(*size, 3)).astype(np.float32)
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def write_nyud(
    root: Path, num_train: int = 4, num_val: int = 2, size: Sequence[int] = (24, 32), seed: int = 0
) -> Path:
    """A tiny NYUD_MT folder; returns ``root/NYUD_MT``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "NYUD_MT"
    ids = {"train": [], "val": []}
    for index in range(num_train + num_val):
        image_id = f"img_{5001 + index}"
        ids["train" if index < num_train else "val"].append(image_id)

        save_jpg(folder / "images" / f"{image_id}.jpg", _rgb(rng, size))
        save_png(
            folder / "segmentation" / f"{image_id}.png",
            rng.integers(0, 41, size, dtype=np.uint8),
        )
        depth = rng.uniform(0.5, 10.0, size).astype(np.float32)
        depth[rng.random(size) < 0.1] = 0.0
        save_npy(folder / "depth" / f"{image_id}.npy", depth)
        normals = _unit_normals(rng, size)
        normals[rng.random(size) < 0.1] = 0.0
        save_npy(folder / "normals" / f"{image_id}.npy", normals)
        save_npy(folder / "edge" / f"{image_id}.npy", (rng.random(size) < 0.2).astype(np.float32))

    (folder / "gt_sets").mkdir(parents=True, exist_ok=True)
    for split, names in ids.items():
        (folder / "gt_sets" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return folder


def cityscapes_stem(city: str, index: int) -> str:
    """The ``<city>_<seq>_<frame>`` stem of a fixture image."""
    return f"{city}_000000_{19 + index:06d}"


def write_cityscapes_sample(
    folder: Path,
    split: str,
    city: str,
    stem: str,
    image: np.ndarray,
    label_ids: np.ndarray,
    instance_ids: np.ndarray,
    disparity: np.ndarray,
    camera: Mapping = CAMERA,
) -> None:
    """Write one image's leftImg8bit, gtFine labelIds/instanceIds, disparity and camera files."""
    save_png(folder / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
    gt = folder / "gtFine" / split / city
    save_png(gt / f"{stem}_gtFine_labelIds.png", label_ids.astype(np.uint8))
    save_png(gt / f"{stem}_gtFine_instanceIds.png", instance_ids.astype(np.uint16))
    save_png(folder / "disparity" / split / city / f"{stem}_disparity.png", disparity)
    camera_path = folder / "camera" / split / city / f"{stem}_camera.json"
    camera_path.parent.mkdir(parents=True, exist_ok=True)
    camera_path.write_text(json.dumps(camera, indent=2))


def write_cityscapes(
    root: Path, num_train: int = 4, num_val: int = 2, size: Sequence[int] = (32, 64), seed: int = 0
) -> Path:
    """A tiny Cityscapes (train city aachen, val city frankfurt); returns ``root/cityscapes``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cityscapes"
    height, width = size
    for index in range(num_train + num_val):
        split, city = ("train", "aachen") if index < num_train else ("val", "frankfurt")
        label_ids = rng.integers(0, 34, size, dtype=np.uint8)
        label_ids[label_ids >= 24] = 7  # things only where instances are drawn below
        instance_ids = label_ids.astype(np.uint16)
        boxes = [(26, 0), (26, 1), (24, 0)]  # two cars and a person
        for class_id, instance in boxes:
            top = int(rng.integers(0, height // 2))
            left = int(rng.integers(0, width - width // 4))
            rows = slice(top, top + height // 3)
            cols = slice(left, left + width // 5)
            label_ids[rows, cols] = class_id
            instance_ids[rows, cols] = class_id * 1000 + instance
        disparity = rng.integers(0, 30000, size, dtype=np.uint16)
        disparity[rng.random(size) < 0.1] = 0
        write_cityscapes_sample(
            folder,
            split,
            city,
            cityscapes_stem(city, index),
            _rgb(rng, size),
            label_ids,
            instance_ids,
            disparity,
        )
    return folder


def taskonomy_name(point: int, view: int, domain: str, extension: str = ".png") -> str:
    """``point_<P>_view_<V>_domain_<domain><extension>``."""
    return f"point_{point}_view_{view}_domain_{domain}{extension}"


def write_taskonomy(
    root: Path,
    num_train: int = 4,
    num_val: int = 2,
    size: Sequence[int] = (32, 32),
    seed: int = 0,
    buildings: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """A tiny Taskonomy folder with every domain; returns ``root/taskonomy``.

    ``buildings`` defaults to the published tiny split (the default of the data
    config), so each split gets at least one view per building: ``num_train`` and
    ``num_val`` are raised to the number of buildings when smaller.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "taskonomy"
    buildings = buildings or {"train": TINY_BUILDINGS["train"], "val": TINY_BUILDINGS["val"]}
    counts = {"train": num_train, "val": num_val}
    for split, names in buildings.items():
        for index in range(max(counts.get(split, 1), len(names))):
            building, point, view = names[index % len(names)], index, index % 3
            write_taskonomy_view(folder, building, point, view, rng, size)
    return folder


def write_taskonomy_view(
    folder: Path,
    building: str,
    point: int,
    view: int,
    rng: np.random.Generator,
    size: Sequence[int] = (32, 32),
) -> None:
    """Write the rgb file and every target domain's file of one view."""

    def path(domain: str, extension: str = ".png") -> Path:
        return folder / domain / building / taskonomy_name(point, view, domain, extension)

    save_png(path("rgb"), _rgb(rng, size))
    save_png(path("segment_semantic"), rng.integers(0, 18, size, dtype=np.uint8))
    depth = rng.integers(0, 2**13, size, dtype=np.uint16)
    depth[rng.random(size) < 0.1] = 65535
    save_png(path("depth_zbuffer"), depth)
    save_png(path("normal"), _rgb(rng, size))
    save_png(path("edge_texture"), rng.integers(0, 65536, size, dtype=np.uint16))
    save_png(path("keypoints2d"), rng.integers(0, 65536, size, dtype=np.uint16))
    scores = rng.random(365)
    save_npy(path("class_scene", ".npy"), scores / scores.sum())


def write_celeba(
    root: Path,
    num_train: int = 4,
    num_val: int = 2,
    num_test: int = 1,
    size: Sequence[int] = (36, 30),
    seed: int = 0,
) -> Path:
    """A tiny CelebA (images and all five text files) in ``root/celeba``; returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "celeba"
    partitions = [0] * num_train + [1] * num_val + [2] * num_test
    files = [f"{index + 1:06d}.jpg" for index in range(len(partitions))]
    attributes = rng.choice(np.array([-1, 1]), (len(files), len(ATTRIBUTES)))

    for name in files:
        save_jpg(folder / "img_align_celeba" / name, _rgb(rng, size))

    count = f"{len(files)}\n"
    rows = "".join(
        f"{name} " + " ".join(f"{v:2d}" for v in values) + "\n"
        for name, values in zip(files, attributes)
    )
    (folder / "list_attr_celeba.txt").write_text(count + " ".join(ATTRIBUTES) + " \n" + rows)
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {part}\n" for name, part in zip(files, partitions))
    )
    (folder / "identity_CelebA.txt").write_text(
        "".join(f"{name} {index % 3 + 1}\n" for index, name in enumerate(files))
    )
    (folder / "list_bbox_celeba.txt").write_text(
        count
        + "image_id x_1 y_1 width height\n"
        + "".join(f"{name} 95 71 226 313\n" for name in files)
    )
    landmarks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
    landmarks += "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
    (folder / "list_landmarks_align_celeba.txt").write_text(
        count
        + landmarks
        + "".join(f"{name} 69 109 106 113 77 142 73 152 108 154\n" for name in files)
    )
    return Path(root)
