"""The data module contract every dataset follows.

A sample is a dict: ``"image"`` is a float32 tensor of shape (3, H, W) or
(1, H, W), already normalised for the network; every other key is one task's
target, named as in the task configs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import to_absolute_path
from torch.utils.data import DataLoader, Dataset, Subset

from mtl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JointCompose,
    build_transform,
    check_targets,
)


class MultiTaskDataModule(pl.LightningDataModule):
    """Train and validation splits of a multi-task dataset.

    Subclasses implement :meth:`make_dataset`. Validation data is never
    augmented; the images used for affinity measurement are the first
    ``rsa_images`` of the validation split, so they are held out from the
    single-task networks' training.

    Args:
        targets: the batch keys to load, one per task.
        batch_size: images per batch.
        num_workers: data-loading worker processes.
        input_size: (height, width) the network sees; also used to count FLOPs.
        in_channels: image channels the network sees.
    """

    def __init__(
        self,
        targets: Sequence[str],
        batch_size: int = 32,
        num_workers: int = 0,
        input_size: Sequence[int] = (32, 32),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.targets = list(targets)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.input_size = tuple(input_size)
        self.in_channels = in_channels
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def make_dataset(self, split: str) -> Dataset:
        """The dataset for ``split`` (``"train"`` or ``"val"``), with its transforms."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.make_dataset("train")
        if self.val_set is None:
            self.val_set = self.make_dataset("val")

    def _loader(
        self, dataset: Dataset, shuffle: bool, batch_size: int | None = None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def rsa_dataloader(self, num_images: int) -> DataLoader:
        """The first ``num_images`` validation images, in a fixed order."""
        self.setup("fit")
        available = len(self.val_set)
        if num_images > available:
            raise ValueError(
                f"affinity.num_images={num_images} exceeds the {available} validation images; "
                f"set affinity.num_images to at most {available}"
            )
        subset = Subset(self.val_set, range(num_images))
        return self._loader(subset, shuffle=False)


class DenseDataModule(MultiTaskDataModule):
    """A dataset read from ``root`` with per-pixel targets and label-consistent augmentation.

    Training samples are augmented (when ``augment``) by a random scale in
    ``scale_range``, a crop back to ``input_size`` and a horizontal flip; the
    validation split is only resized. Subclasses name the dataset, its targets
    and their kinds, and implement :meth:`make_dataset` with :meth:`transform`.

    Args:
        root: the dataset folder (relative paths are taken from the launch directory).
        targets: the targets to load; default all of ``known_targets``.
        input_size: (height, width) the network sees; default ``default_input_size``.
        batch_size: images per batch.
        num_workers: data-loading worker processes.
        augment: augment the training split.
        scale_range: range of the random scale factor.
        mean: per-channel image mean for normalisation.
        std: per-channel image standard deviation for normalisation.
    """

    dataset_name: str = ""
    known_targets: tuple[str, ...] = ()
    kinds: Mapping[str, str] = {}
    default_input_size: tuple[int, int] = (256, 256)

    def __init__(
        self,
        root: str | Path,
        targets: Sequence[str] | None = None,
        input_size: Sequence[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
        scale_range: Sequence[float] = (1.0, 1.5),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        targets = check_targets(
            self.known_targets if targets is None else targets,
            self.known_targets,
            self.dataset_name,
        )
        super().__init__(targets, batch_size, num_workers, input_size or self.default_input_size)
        self.root = Path(to_absolute_path(str(root)))
        self.augment = augment
        self.scale_range = tuple(scale_range)
        self.mean, self.std = tuple(mean), tuple(std)

    def transform(self, split: str) -> JointCompose:
        """Resizing, augmentation on the training split only, and normalisation."""
        return build_transform(
            {key: self.kinds[key] for key in ("image", *self.targets)},
            self.input_size,
            augment=self.augment and split == "train",
            scale_range=self.scale_range,
            mean=self.mean,
            std=self.std,
        )
