"""Multi-task data from scikit-learn's bundled handwritten digits (1,797 real 8 x 8 scans).

The scans ship inside scikit-learn, so this dataset works offline. Images are
upsampled to ``size`` x ``size``. Targets, all derived from the real scan and
its real class label:

- ``digit``: the digit's class, 0..9 (the real label).
- ``parity``: 1 if the digit is odd (derived from the label).
- ``large``: 1 if the digit is 5 or more (derived from the label).
- ``strokes``: per-pixel stroke mask, 1 where the upsampled scan's intensity
  exceeds half its range (derived from the pixels).
- ``edges``: per-pixel stroke boundary, mask pixels with a 4-neighbour outside
  the mask (derived from the pixels).
- ``clean``: the upsampled scan itself; the network sees it with added noise,
  so this is denoising (derived from the pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mtl.data.base import MultiTaskDataModule

TARGETS = ("digit", "parity", "large", "strokes", "edges", "clean")


def make_digit_tensors(
    size: int = 32, noise: float = 0.2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """All 1,797 digits as tensors: the noisy input image and every target."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scans = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))

    clean = F.interpolate(scans, size=(size, size), mode="bilinear", align_corners=False)
    clean = clean.clamp(0.0, 1.0)
    strokes = (clean > 0.5).float()
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    inside = F.conv2d(F.pad(strokes, (1, 1, 1, 1), value=1.0), cross) == 5
    edges = strokes * (~inside).float()

    generator = torch.Generator().manual_seed(seed)
    noisy = clean + noise * torch.randn(clean.shape, generator=generator)
    image = (noisy - 0.5) / 0.5

    return {
        "image": image,
        "digit": labels,
        "parity": labels % 2,
        "large": (labels >= 5).long(),
        "strokes": strokes.squeeze(1).long(),
        "edges": edges,
        "clean": clean,
    }


class TensorDictDataset(Dataset):
    """Samples as dicts drawn from equally long tensors."""

    def __init__(self, tensors: dict[str, torch.Tensor], indices: Sequence[int]) -> None:
        self.tensors = tensors
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = self.indices[i]
        return {key: value[j] for key, value in self.tensors.items()}


class DigitsDataModule(MultiTaskDataModule):
    """The bundled digits with image-level and per-pixel tasks.

    The split is deterministic: a seeded permutation puts ``val_fraction`` of the
    scans in validation.

    Args:
        targets: any of ``digit, parity, large, strokes, edges, clean``.
        size: side of the upsampled square image.
        noise: standard deviation of the Gaussian noise added to the input.
        val_fraction: share of scans held out for validation.
        limit: use only the first ``limit`` scans of each split (for quick tests).
        seed: seed of the split and the noise.
        in_channels: 1 for grayscale, or 3 to repeat the scan (for ImageNet-shaped encoders).
    """

    def __init__(
        self,
        targets: Sequence[str] = TARGETS,
        size: int = 32,
        noise: float = 0.2,
        val_fraction: float = 0.2,
        limit: int | None = None,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        in_channels: int = 1,
    ) -> None:
        unknown = set(targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"unknown digits targets {sorted(unknown)}; choose from {TARGETS}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3 for the digits, got {in_channels}")
        super().__init__(targets, batch_size, num_workers, (size, size), in_channels)
        self.size, self.noise, self.val_fraction = size, noise, val_fraction
        self.limit, self.seed = limit, seed
        self._tensors: dict[str, torch.Tensor] | None = None

    def make_dataset(self, split: str) -> Dataset:
        if self._tensors is None:
            everything = make_digit_tensors(self.size, self.noise, self.seed)
            self._tensors = {k: everything[k] for k in ("image", *self.targets)}
            self._tensors["image"] = self._tensors["image"].expand(-1, self.in_channels, -1, -1)
        count = len(self._tensors["image"])
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed)).tolist()
        num_val = int(round(count * self.val_fraction))
        indices = order[:num_val] if split == "val" else order[num_val:]
        if self.limit is not None:
            indices = indices[: self.limit]
        return TensorDictDataset(self._tensors, indices)
