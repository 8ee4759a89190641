"""Cityscapes (official layout): 19-class segmentation, instance centre offsets, depth.

Layout under ``root``::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      uint8 labelIds
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   16-bit
    disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png         16-bit
    camera/<split>/<city>/<city>_<seq>_<frame>_camera.json

torchvision's ``Cityscapes`` finds the images and the gtFine files; this module
adds disparity and camera files and decodes every target into the sample contract.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import Dataset

from mtl.data.base import DenseDataModule
from mtl.data.transforms import (
    IGNORE_INDEX,
    JointCompose,
    check_shape,
    check_targets,
    dataset_not_found,
    missing_files,
    read_image_array,
    read_rgb,
)

TARGETS = ("semseg", "instance", "depth")
KINDS = {"image": "image", "semseg": "label", "instance": "offsets", "depth": "depth"}
NUM_CLASSES = 19

# (labelId, trainId, name) from the official cityscapesScripts labels table; trainId 255 = ignored.
LABELS = (
    (0, 255, "unlabeled"),
    (1, 255, "ego vehicle"),
    (2, 255, "rectification border"),
    (3, 255, "out of roi"),
    (4, 255, "static"),
    (5, 255, "dynamic"),
    (6, 255, "ground"),
    (7, 0, "road"),
    (8, 1, "sidewalk"),
    (9, 255, "parking"),
    (10, 255, "rail track"),
    (11, 2, "building"),
    (12, 3, "wall"),
    (13, 4, "fence"),
    (14, 255, "guard rail"),
    (15, 255, "bridge"),
    (16, 255, "tunnel"),
    (17, 5, "pole"),
    (18, 255, "polegroup"),
    (19, 6, "traffic light"),
    (20, 7, "traffic sign"),
    (21, 8, "vegetation"),
    (22, 9, "terrain"),
    (23, 10, "sky"),
    (24, 11, "person"),
    (25, 12, "rider"),
    (26, 13, "car"),
    (27, 14, "truck"),
    (28, 15, "bus"),
    (29, 255, "caravan"),
    (30, 255, "trailer"),
    (31, 16, "train"),
    (32, 17, "motorcycle"),
    (33, 18, "bicycle"),
)
CLASS_NAMES = tuple(name for _, train_id, name in LABELS if train_id != IGNORE_INDEX)

# labelId -> trainId; every other stored value (e.g. 255 for the license plate's -1) is ignored.
LABEL_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.int64)
for _label_id, _train_id, _ in LABELS:
    LABEL_TO_TRAIN_ID[_label_id] = _train_id

# Our target name -> torchvision's name for the gtFine file it is decoded from.
_GT_TYPES = {"semseg": "semantic", "instance": "instance"}

_EXPECTED = (
    "leftImg8bit/<split>/<city>/*_leftImg8bit.png, gtFine/<split>/<city>/*_gtFine_labelIds.png "
    "and *_gtFine_instanceIds.png, disparity/<split>/<city>/*_disparity.png, "
    "camera/<split>/<city>/*_camera.json"
)
_SOURCE = (
    "Cityscapes (Cordts et al., CVPR 2016) is downloaded after registering at "
    "https://www.cityscapes-dataset.com/downloads/: unzip leftImg8bit_trainvaltest.zip, "
    "gtFine_trainvaltest.zip, disparity_trainvaltest.zip and camera_trainvaltest.zip into one "
    "folder."
)


class CityscapesMT(torchvision.datasets.Cityscapes):
    """One split of Cityscapes (fine annotations) as sample dicts.

    Files are listed in sorted order, so the first validation images are the same
    on every machine.

    Args:
        root: the folder holding ``leftImg8bit``, ``gtFine``, ``disparity`` and ``camera``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        targets: any of ``semseg, instance, depth``.
        transform: a joint transform over the sample dict, e.g. from
            :func:`mtl.data.transforms.build_transform` with :data:`KINDS`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        targets: Sequence[str] = TARGETS,
        transform: JointCompose | None = None,
    ) -> None:
        root = Path(root)
        self.target_keys = check_targets(targets, TARGETS, "Cityscapes")
        self.joint_transform = transform
        _check_folders(root, split, self.target_keys)

        gt_types = [_GT_TYPES[key] for key in self.target_keys if key in _GT_TYPES]
        super().__init__(str(root), split=split, mode="fine", target_type=gt_types)

        # Sorted (torchvision keeps the file system's order), and only left camera images.
        order = sorted(range(len(self.images)), key=lambda i: self.images[i])
        order = [i for i in order if self.images[i].endswith("_leftImg8bit.png")]
        self.images = [self.images[i] for i in order]
        self.targets = [self.targets[i] for i in order]
        self.gt_types = gt_types
        self._check_files(root)

    def _extra_paths(self, index: int) -> tuple[Path, Path]:
        image = Path(self.images[index])
        stem = image.name.split("_leftImg8bit")[0]
        city_split = image.parent.relative_to(Path(self.images_dir).parent)
        root = Path(self.root)
        disparity = root / "disparity" / city_split / f"{stem}_disparity.png"
        camera = root / "camera" / city_split / f"{stem}_camera.json"
        return disparity, camera

    def _check_files(self, root: Path) -> None:
        if not self.images:
            raise dataset_not_found(
                "Cityscapes", root, [f"leftImg8bit/{self.split}/<city>/*.png"], _EXPECTED, _SOURCE
            )
        missing = []
        for index in range(len(self.images)):
            paths = list(self.targets[index])
            if "depth" in self.target_keys:
                paths += self._extra_paths(index)
            missing += missing_files(root, paths)
        if missing:
            raise dataset_not_found("Cityscapes", root, missing, _EXPECTED, _SOURCE)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = read_rgb(self.images[index])
        size = tuple(image.shape[-2:])
        sample = {"image": image}
        gt_paths = dict(zip(self.gt_types, self.targets[index]))
        if "semseg" in self.target_keys:
            sample["semseg"] = decode_semseg(Path(gt_paths["semantic"]), size)
        if "instance" in self.target_keys:
            sample["instance"] = decode_instance_offsets(Path(gt_paths["instance"]), size)
        if "depth" in self.target_keys:
            sample["depth"] = decode_depth(*self._extra_paths(index), size)
        if self.joint_transform is not None:
            sample = self.joint_transform(sample)
        return sample

    def extra_repr(self) -> str:
        return f"Split: {self.split}\nTargets: {self.target_keys}"


def _check_folders(root: Path, split: str, targets: Sequence[str]) -> None:
    needed = [f"leftImg8bit/{split}"]
    if "semseg" in targets or "instance" in targets:
        needed.append(f"gtFine/{split}")
    if "depth" in targets:
        needed += [f"disparity/{split}", f"camera/{split}"]
    missing = [f"{folder}/" for folder in needed if not (root / folder).is_dir()]
    if missing:
        raise dataset_not_found("Cityscapes", root, missing, _EXPECTED, _SOURCE)


def decode_semseg(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """int64 (H, W) trainIds 0..18 from a labelIds PNG; other labels -> 255."""
    raw = read_image_array(path)
    check_shape(raw, size, path)
    if raw.ndim != 2 or raw.max(initial=0) > 255:
        raise ValueError(
            f"{path} is not a labelIds map: expected one 8-bit channel, got shape {raw.shape}"
        )
    return torch.from_numpy(LABEL_TO_TRAIN_ID[raw.astype(np.int64)])


def instance_offsets(instance_ids: np.ndarray) -> np.ndarray:
    """float32 (2, H, W) = (dy, dx) from each pixel to its instance's mean position, NaN elsewhere.

    Only ids of at least 1000 (class * 1000 + index) are instances; pixels holding a
    plain class id (stuff, or crowds of a thing class) have no instance.
    """
    ids = instance_ids.astype(np.int64)
    offsets = np.full((2, *ids.shape), np.nan, dtype=np.float32)
    on_instance = ids >= 1000
    if not on_instance.any():
        return offsets

    _, which = np.unique(ids[on_instance], return_inverse=True)
    rows, cols = np.nonzero(on_instance)
    counts = np.bincount(which)
    centre_rows = np.bincount(which, weights=rows) / counts
    centre_cols = np.bincount(which, weights=cols) / counts

    offsets[0][on_instance] = centre_rows[which] - rows
    offsets[1][on_instance] = centre_cols[which] - cols
    return offsets


def decode_instance_offsets(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (2, H, W) instance centre offsets from a 16-bit instanceIds PNG."""
    raw = read_image_array(path)
    check_shape(raw, size, path)
    if raw.ndim != 2:
        raise ValueError(
            f"{path} has shape {raw.shape}; expected a single-channel instanceIds map"
        )
    return torch.from_numpy(instance_offsets(raw))


def read_camera(path: Path) -> tuple[float, float]:
    """(baseline in metres, fx in pixels) from a Cityscapes camera json."""
    try:
        camera = json.loads(path.read_text())
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RuntimeError(
            f"cannot read {path}: {error!r}. Expected a Cityscapes camera json with "
            "extrinsic.baseline and intrinsic.fx; replace it from camera_trainvaltest.zip"
        ) from error
    if baseline <= 0 or fx <= 0:
        raise ValueError(f"{path} has baseline={baseline}, fx={fx}; both must be positive")
    return baseline, fx


def disparity_to_depth(raw: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """float32 depth in metres from stored 16-bit disparity; 0 where invalid.

    Disparity is ``(p - 1) / 256`` for ``p > 0``; ``p == 0`` is invalid, and so is
    ``p == 1`` (zero disparity, infinitely far).
    """
    stored = raw.astype(np.float64)
    disparity = (stored - 1.0) / 256.0
    valid = disparity > 0
    depth = np.zeros_like(stored)
    depth[valid] = baseline * fx / disparity[valid]
    return depth.astype(np.float32)


def decode_depth(disparity_path: Path, camera_path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (1, H, W) depth in metres from a disparity PNG and its camera json."""
    raw = read_image_array(disparity_path)
    check_shape(raw, size, disparity_path)
    if raw.ndim != 2:
        raise ValueError(f"{disparity_path} has shape {raw.shape}; expected 16-bit disparity")
    baseline, fx = read_camera(camera_path)
    return torch.from_numpy(disparity_to_depth(raw, baseline, fx)[None])


class CityscapesDataModule(DenseDataModule):
    """Cityscapes train and val splits (fine annotations), resized to ``input_size``.

    Targets: any of ``semseg, instance, depth``; default input size 256 x 512. The
    other arguments are those of :class:`~mtl.data.base.DenseDataModule`.
    """

    dataset_name = "Cityscapes"
    known_targets = TARGETS
    kinds = KINDS
    default_input_size = (256, 512)

    def make_dataset(self, split: str) -> Dataset:
        return CityscapesMT(self.root, split, self.targets, self.transform(split))
