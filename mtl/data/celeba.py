"""CelebA (official layout): 40 binary face attributes, each a task of its own.

Layout under ``root``::

    celeba/img_align_celeba/000001.jpg ...
    celeba/list_attr_celeba.txt       line 1 the count, line 2 the 40 names, then
                                      "<file> 1 -1 ..." per image
    celeba/list_eval_partition.txt    "<file> 0|1|2" = train / val / test

The two text files are parsed here rather than through ``torchvision.datasets.CelebA``,
because torchvision checks their MD5 sums against the full release and so rejects
any other copy (a subset, or a test fixture); the format read is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
from torch.utils.data import Dataset

from mtl.data.base import MultiTaskDataModule
from mtl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JointCompose,
    JointTransform,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    check_targets,
    dataset_not_found,
    read_rgb,
)

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
SPLITS = {"train": 0, "val": 1, "test": 2}

_EXPECTED = (
    "celeba/img_align_celeba/*.jpg, celeba/list_attr_celeba.txt, celeba/list_eval_partition.txt"
)
_SOURCE = (
    "CelebA (Liu et al., ICCV 2015) is downloaded from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped images and the Anno and "
    "Eval text files), unpacked into a folder named celeba."
)


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """The attribute names and ``{file name: -1/1 vector}`` from ``list_attr_celeba.txt``."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RuntimeError(f"cannot read {path}: {error}") from error
    if len(lines) < 2:
        raise ValueError(f"{path} has {len(lines)} lines; expected a count, the names, then rows")
    names = lines[1].split()

    rows = {}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        try:
            values = np.array([int(v) for v in fields[1:]], dtype=np.int8)
        except ValueError as error:
            raise ValueError(
                f"{path} line {number}: {error}; expected '<file> 1 -1 ...'"
            ) from None
        if len(values) != len(names) or not np.isin(values, (-1, 1)).all():
            raise ValueError(
                f"{path} line {number} has {len(values)} values {fields[1:6]}...; expected "
                f"{len(names)} values, each -1 or 1"
            )
        rows[fields[0]] = values

    try:
        count = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"{path} line 1 is {lines[0]!r}; expected the number of images") from None
    if count != len(rows):
        raise ValueError(f"{path} announces {count} images but lists {len(rows)}")
    return names, rows


def read_partition(path: Path) -> dict[str, int]:
    """``{file name: 0 | 1 | 2}`` from ``list_eval_partition.txt``."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RuntimeError(f"cannot read {path}: {error}") from error
    partition = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{path} line {number} is {line!r}; expected '<file> 0|1|2'")
        partition[fields[0]] = int(fields[1])
    return partition


class CelebAMT(Dataset):
    """One split of CelebA as sample dicts with one float 0/1 scalar per attribute.

    Args:
        root: the folder holding ``celeba/`` (as for ``torchvision.datasets.CelebA``).
        split: ``"train"``, ``"val"`` or ``"test"`` (partitions 0, 1, 2).
        targets: attribute names, e.g. ``["Smiling", "Male"]``.
        transform: a joint transform over the sample dict, e.g. from
            :func:`mtl.data.transforms.build_transform`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        targets: Sequence[str] = ATTRIBUTES,
        transform: JointCompose | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown CelebA split {split!r}; choose from {sorted(SPLITS)}")
        self.root = Path(root)
        self.folder = self.root / "celeba"
        self.split = split
        self.transform = transform

        needed = ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")
        missing = [f"celeba/{name}" for name in needed if not (self.folder / name).exists()]
        if missing:
            raise dataset_not_found("CelebA", self.root, missing, _EXPECTED, _SOURCE)

        names, rows = read_attributes(self.folder / "list_attr_celeba.txt")
        self.targets = check_targets(targets, names, "CelebA attribute")
        partition = read_partition(self.folder / "list_eval_partition.txt")
        self.files = sorted(f for f, part in partition.items() if part == SPLITS[split])
        unlabelled = [f for f in self.files if f not in rows]
        if unlabelled:
            raise ValueError(
                f"{len(unlabelled)} images of list_eval_partition.txt have no row in "
                f"{self.folder / 'list_attr_celeba.txt'}, e.g. {unlabelled[:3]}"
            )
        columns = [names.index(t) for t in self.targets]
        self.attributes = torch.from_numpy(
            (np.stack([rows[f][columns] for f in self.files]) > 0).astype(np.float32)
            if self.files
            else np.zeros((0, len(columns)), dtype=np.float32)
        )
        absent = [
            f"celeba/img_align_celeba/{f}"
            for f in self.files
            if not (self.folder / "img_align_celeba" / f).is_file()
        ]
        if absent:
            raise dataset_not_found("CelebA", self.root, absent, _EXPECTED, _SOURCE)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = {"image": read_rgb(self.folder / "img_align_celeba" / self.files[index])}
        for column, target in enumerate(self.targets):
            sample[target] = self.attributes[index, column]
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"CelebAMT(root={self.root}, split={self.split}, images={len(self)})"


class CelebADataModule(MultiTaskDataModule):
    """CelebA train and val partitions, images resized to ``input_size``.

    Training images are flipped horizontally at random when ``augment``; the
    validation split is only resized.

    Args:
        root: the folder holding ``celeba/`` (relative paths are taken from the launch directory).
        targets: attribute names; each becomes a task.
        input_size: (height, width) the network sees.
        batch_size: images per batch.
        num_workers: data-loading worker processes.
        augment: augment the training split.
        mean: per-channel image mean for normalisation.
        std: per-channel image standard deviation for normalisation.
    """

    def __init__(
        self,
        root: str | Path,
        targets: Sequence[str] = ATTRIBUTES,
        input_size: Sequence[int] = (64, 64),
        batch_size: int = 256,
        num_workers: int = 0,
        augment: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        targets = check_targets(targets, ATTRIBUTES, "CelebA attribute")
        super().__init__(targets, batch_size, num_workers, input_size)
        self.root = Path(to_absolute_path(str(root)))
        self.augment = augment
        self.mean, self.std = tuple(mean), tuple(std)

    def make_dataset(self, split: str) -> Dataset:
        steps: list[JointTransform] = [Resize(self.input_size)]
        if self.augment and split == "train":
            steps.append(RandomHorizontalFlip(0.5))
        steps.append(Normalize(self.mean, self.std))
        kinds = {"image": "image", **{target: "scalar" for target in self.targets}}
        return CelebAMT(self.root, split, self.targets, JointCompose(steps, kinds))
