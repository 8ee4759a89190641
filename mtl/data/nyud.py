"""NYUD-v2 in the multi-task layout (NYUD_MT): 40-class segmentation, depth, normals, edges.

Layout under ``root``::

    gt_sets/{train,val}.txt     one image id per line
    images/<id>.jpg             RGB
    segmentation/<id>.png       uint8: 0 = void, 1..40 = classes
    depth/<id>.npy              float32 H x W, metres, 0 = invalid
    normals/<id>.npy            float32 H x W x 3 in [-1, 1], all-zero = invalid
    edge/<id>.npy               H x W in {0, 1}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
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
    read_npy,
    read_rgb,
)

TARGETS = ("semseg", "depth", "normals", "edge")
KINDS = {
    "image": "image",
    "semseg": "label",
    "depth": "depth",
    "normals": "normals",
    "edge": "edges",
}
NUM_CLASSES = 40

# The target's folder and file extension under the dataset root.
_FILES = {
    "semseg": ("segmentation", ".png"),
    "depth": ("depth", ".npy"),
    "normals": ("normals", ".npy"),
    "edge": ("edge", ".npy"),
}
_EXPECTED = (
    "gt_sets/{train,val}.txt, images/<id>.jpg, segmentation/<id>.png, depth/<id>.npy, "
    "normals/<id>.npy, edge/<id>.npy"
)
_SOURCE = (
    "NYUD_MT is the NYUD-v2 labelled set (Silberman et al., ECCV 2012, "
    "https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html) with the 795/654 split, 40-class "
    "labels, normals and edges, as distributed with the public multi-task learning code bases "
    "(e.g. Vandenhende et al.'s Multi-Task-Learning-PyTorch)."
)

# 0 (void) -> 255, class k in 1..40 -> k - 1.
_SEMSEG_LUT = np.full(256, IGNORE_INDEX, dtype=np.int64)
_SEMSEG_LUT[1 : NUM_CLASSES + 1] = np.arange(NUM_CLASSES)


class NYUDMT(Dataset):
    """One split of NYUD_MT as sample dicts (see the module docstring for the layout).

    Args:
        root: the NYUD_MT folder.
        split: ``"train"`` or ``"val"`` (the name of a list in ``gt_sets``).
        targets: any of ``semseg, depth, normals, edge``.
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
        self.root = Path(root)
        self.split = split
        self.targets = check_targets(targets, TARGETS, "NYUD")
        self.transform = transform
        self.ids = self._read_ids()

    def _read_ids(self) -> list[str]:
        folders = ["images", *(_FILES[t][0] for t in self.targets)]
        missing = [f"{f}/" for f in folders if not (self.root / f).is_dir()]
        split_file = self.root / "gt_sets" / f"{self.split}.txt"
        if not split_file.is_file():
            missing.append(f"gt_sets/{self.split}.txt")
        if missing:
            raise dataset_not_found("NYUD_MT", self.root, missing, _EXPECTED, _SOURCE)

        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"{split_file} lists no image ids; expected one id per line")

        absent = missing_files(
            self.root, [path for image_id in ids for path in self._paths(image_id).values()]
        )
        if absent:
            raise dataset_not_found("NYUD_MT", self.root, absent, _EXPECTED, _SOURCE)
        return ids

    def _paths(self, image_id: str) -> dict[str, Path]:
        paths = {"image": self.root / "images" / f"{image_id}.jpg"}
        for target in self.targets:
            folder, extension = _FILES[target]
            paths[target] = self.root / folder / f"{image_id}{extension}"
        return paths

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        paths = self._paths(self.ids[index])
        image = read_rgb(paths["image"])
        size = tuple(image.shape[-2:])
        sample = {"image": image}
        for target in self.targets:
            sample[target] = _DECODERS[target](paths[target], size)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"NYUDMT(root={self.root}, split={self.split}, targets={self.targets}, "
            f"images={len(self)})"
        )


def decode_semseg(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """int64 (H, W): void 0 -> 255, classes 1..40 -> 0..39."""
    raw = read_image_array(path)
    check_shape(raw, size, path)
    if raw.ndim != 2 or raw.max(initial=0) > NUM_CLASSES:
        raise ValueError(
            f"{path} is not a NYUD 40-class label map: expected one channel of values 0..40, "
            f"got shape {raw.shape} with maximum {int(raw.max(initial=0))}"
        )
    return torch.from_numpy(_SEMSEG_LUT[raw])


def decode_depth(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (1, H, W) metres; non-finite values become 0 (invalid)."""
    raw = _single_channel(read_npy(path).astype(np.float32), size, path)
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    return torch.from_numpy(raw)


def decode_normals(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (3, H, W) (x, y, z); all-zero pixels stay zero (invalid)."""
    raw = read_npy(path).astype(np.float32)
    check_shape(raw, size, path)
    if raw.ndim != 3 or raw.shape[2] != 3:
        raise ValueError(f"{path} has shape {raw.shape}; expected H x W x 3 normals")
    return torch.from_numpy(np.ascontiguousarray(raw.transpose(2, 0, 1)))


def decode_edge(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (1, H, W) in {0, 1}."""
    raw = _single_channel(read_npy(path), size, path)
    return torch.from_numpy((raw > 0.5).astype(np.float32))


def _single_channel(raw: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    check_shape(raw, size, path)
    if raw.size != size[0] * size[1]:
        raise ValueError(f"{path} has shape {raw.shape}; expected one H x W channel")
    return raw.reshape(1, *size)


_DECODERS = {
    "semseg": decode_semseg,
    "depth": decode_depth,
    "normals": decode_normals,
    "edge": decode_edge,
}


class NYUDDataModule(DenseDataModule):
    """NYUD_MT train and val splits, resized to ``input_size`` (default 480 x 640).

    Targets: any of ``semseg, depth, normals, edge``. The other arguments are those
    of :class:`~mtl.data.base.DenseDataModule`.
    """

    dataset_name = "NYUD"
    known_targets = TARGETS
    kinds = KINDS
    default_input_size = (480, 640)

    def make_dataset(self, split: str) -> Dataset:
        return NYUDMT(self.root, split, self.targets, self.transform(split))
