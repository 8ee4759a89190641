"""Taskonomy: one folder per domain, one sub-folder per building, splits by building.

Layout under ``root``::

    <domain>/<building>/point_<P>_view_<V>_domain_<domain>.png

Decoding, per target:

- ``segment_semantic``: 8-bit; 0 = uncertain -> 255, 1 = background -> 0,
  2..17 -> 1..16 (17 classes). A copy stored as RGB must have equal channels.
- ``depth_zbuffer``: 16-bit, units of 1/512 m; valid where raw < 2^13, else 0.
- ``normal``: 8-bit RGB, value = (x / 255 - 0.5) * 2 per channel (x, y, z), as
  stored (not renormalised, so only approximately unit length).
- ``edge_texture``, ``keypoints2d``: 16-bit single channel, standardised as
  (raw - mean) / std with per-target ``regression_stats``; they have no invalid
  pixels.
- ``class_scene``: read from ``class_scene/<building>/point_<P>_view_<V>_domain_class_scene.npy``,
  holding either an integer class index or a 1-D vector of class scores (such as
  the released scene-class probabilities), whose argmax is the class.

Label paths are built from the rgb file's building, point and view, never by
replacing text in the rgb path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
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

TARGETS = (
    "segment_semantic",
    "depth_zbuffer",
    "normal",
    "edge_texture",
    "keypoints2d",
    "class_scene",
)
KINDS = {
    "image": "image",
    "segment_semantic": "label",
    "depth_zbuffer": "depth",
    "normal": "normals",
    "edge_texture": "regression",
    "keypoints2d": "regression",
    "class_scene": "scalar",
}
NUM_SEMSEG_CLASSES = 17
DEPTH_UNITS_PER_METRE = 512.0
DEPTH_INVALID_FROM = 2**13
# (mean, std) of the raw 16-bit values; the default maps the full 16-bit range onto [0, 1].
DEFAULT_REGRESSION_STATS = {"edge_texture": (0.0, 65535.0), "keypoints2d": (0.0, 65535.0)}

# The published tiny split (25 / 5 / 5 buildings); the data config repeats it as its default.
TINY_BUILDINGS = {
    "train": [
        "allensville", "beechwood", "benevolence", "coffeen", "cosmos", "forkland", "hanson",
        "hiteman", "klickitat", "lakeville", "leonardo", "lindenwood", "marstons", "merom",
        "mifflinburg", "newfields", "onaga", "pinesdale", "pomaria", "ranchester", "shelbyville",
        "stockman", "tolstoy", "wainscott", "woodbine",
    ],
    "val": ["collierville", "corozal", "darden", "markleeville", "wiconisco"],
    "test": ["ihlen", "mcdade", "muleshoe", "noxapater", "uvalda"],
}  # fmt: skip

_RGB_NAME = re.compile(r"^point_(\d+)_view_(\d+)_domain_rgb\.png$")
_EXPECTED = (
    "one folder per domain (rgb and each target's domain) holding one sub-folder per building, "
    "with files <domain>/<building>/point_<P>_view_<V>_domain_<domain>.png"
)
_SOURCE = (
    "Taskonomy (Zamir et al., CVPR 2018) is obtained through the download tools of "
    "https://github.com/StanfordVL/taskonomy (or the omnidata download tool), one archive "
    "per domain and building."
)

# 0 (uncertain) -> 255, 1 (background) -> 0, 2..17 -> 1..16.
_SEMSEG_LUT = np.full(256, IGNORE_INDEX, dtype=np.int64)
_SEMSEG_LUT[1 : NUM_SEMSEG_CLASSES + 1] = np.arange(NUM_SEMSEG_CLASSES)


def read_buildings(value: Sequence[str] | str | Path) -> list[str]:
    """A split's buildings: a list of names, or a text file with one name per line."""
    if isinstance(value, (str, Path)):
        path = Path(to_absolute_path(str(value)))
        if not path.is_file():
            raise FileNotFoundError(
                f"building list {path} not found; give a text file with one building per line, "
                "or a list of building names"
            )
        names = [line.strip() for line in path.read_text().splitlines()]
        names = [name for name in names if name and not name.startswith("#")]
    else:
        names = [str(name) for name in value]
    if not names:
        raise ValueError(f"no buildings in {value!r}; give at least one building name")
    return names


class TaskonomyMT(Dataset):
    """The views of some Taskonomy buildings as sample dicts (see the module docstring).

    Args:
        root: the folder holding one folder per domain.
        buildings: the buildings of this split.
        targets: any of ``segment_semantic, depth_zbuffer, normal, edge_texture,
            keypoints2d, class_scene``.
        transform: a joint transform over the sample dict, e.g. from
            :func:`mtl.data.transforms.build_transform` with :data:`KINDS`.
        regression_stats: ``{target: (mean, std)}`` of the raw 16-bit regression
            maps; missing targets use :data:`DEFAULT_REGRESSION_STATS`.
    """

    def __init__(
        self,
        root: str | Path,
        buildings: Sequence[str],
        targets: Sequence[str] = TARGETS[:5],
        transform: JointCompose | None = None,
        regression_stats: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.buildings = list(buildings)
        self.targets = check_targets(targets, TARGETS, "Taskonomy")
        self.transform = transform
        self.regression_stats = {**DEFAULT_REGRESSION_STATS, **(regression_stats or {})}
        for target, (_, std) in self.regression_stats.items():
            if std <= 0:
                raise ValueError(
                    f"regression_stats[{target!r}] has std {std}; it must be positive"
                )
        self.views = self._find_views()

    def _find_views(self) -> list[tuple[str, str, str]]:
        domains = ["rgb", *self.targets]
        missing = [
            f"{domain}/{building}/"
            for domain in domains
            for building in self.buildings
            if not (self.root / domain / building).is_dir()
        ]
        if missing:
            raise dataset_not_found("Taskonomy", self.root, missing, _EXPECTED, _SOURCE)

        views = []
        for building in self.buildings:
            found = []
            for path in (self.root / "rgb" / building).iterdir():
                match = _RGB_NAME.match(path.name)
                if match:
                    found.append((int(match[1]), int(match[2]), building, match[1], match[2]))
            if not found:
                raise dataset_not_found(
                    "Taskonomy",
                    self.root,
                    [f"rgb/{building}/point_*_view_*_domain_rgb.png"],
                    _EXPECTED,
                    _SOURCE,
                )
            views += [(b, p, v) for _, _, b, p, v in sorted(found)]

        absent = missing_files(
            self.root, [path for view in views for path in self._paths(view).values()]
        )
        if absent:
            raise dataset_not_found("Taskonomy", self.root, absent, _EXPECTED, _SOURCE)
        return views

    def path(self, domain: str, view: tuple[str, str, str]) -> Path:
        """The file of ``domain`` for ``view`` = (building, point, view)."""
        building, point, view_index = view
        extension = ".npy" if domain == "class_scene" else ".png"
        name = f"point_{point}_view_{view_index}_domain_{domain}{extension}"
        return self.root / domain / building / name

    def _paths(self, view: tuple[str, str, str]) -> dict[str, Path]:
        return {domain: self.path(domain, view) for domain in ("rgb", *self.targets)}

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        paths = self._paths(self.views[index])
        image = read_rgb(paths["rgb"])
        size = tuple(image.shape[-2:])
        sample = {"image": image}
        for target in self.targets:
            path = paths[target]
            if target == "segment_semantic":
                sample[target] = decode_segment_semantic(path, size)
            elif target == "depth_zbuffer":
                sample[target] = decode_depth_zbuffer(path, size)
            elif target == "normal":
                sample[target] = decode_normal(path, size)
            elif target == "class_scene":
                sample[target] = decode_class_scene(path)
            else:
                mean, std = self.regression_stats[target]
                sample[target] = decode_regression(path, size, mean, std)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"TaskonomyMT(root={self.root}, buildings={self.buildings}, "
            f"targets={self.targets}, views={len(self)})"
        )


def _one_channel(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.ndim == 3:
        if not all(np.array_equal(raw[..., 0], raw[..., c]) for c in range(1, raw.shape[2])):
            raise ValueError(f"{path} has {raw.shape[2]} different channels; expected one")
        raw = raw[..., 0]
    return raw


def decode_segment_semantic(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """int64 (H, W): uncertain 0 -> 255, background 1 -> 0, classes 2..17 -> 1..16."""
    raw = _one_channel(read_image_array(path), path)
    check_shape(raw, size, path)
    if raw.max(initial=0) > NUM_SEMSEG_CLASSES:
        raise ValueError(
            f"{path} holds value {int(raw.max())}; Taskonomy segment_semantic has values 0..17"
        )
    return torch.from_numpy(_SEMSEG_LUT[raw.astype(np.int64)])


def decode_depth_zbuffer(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (1, H, W) metres = raw / 512 where raw < 2^13, else 0 (invalid)."""
    raw = _one_channel(read_image_array(path), path).astype(np.float64)
    check_shape(raw, size, path)
    depth = np.where(raw < DEPTH_INVALID_FROM, raw / DEPTH_UNITS_PER_METRE, 0.0)
    return torch.from_numpy(depth.astype(np.float32)[None])


def decode_normal(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 (3, H, W) = (x / 255 - 0.5) * 2 of the 8-bit RGB channels."""
    raw = read_image_array(path)
    check_shape(raw, size, path)
    if raw.ndim != 3 or raw.shape[2] < 3 or raw.dtype != np.uint8:
        raise ValueError(
            f"{path} has shape {raw.shape} and type {raw.dtype}; expected 8-bit RGB normals"
        )
    normal = (raw[..., :3].astype(np.float32) / 255.0 - 0.5) * 2.0
    return torch.from_numpy(np.ascontiguousarray(normal.transpose(2, 0, 1)))


def decode_regression(path: Path, size: tuple[int, int], mean: float, std: float) -> torch.Tensor:
    """float32 (1, H, W) = (raw - mean) / std of a single-channel map."""
    raw = _one_channel(read_image_array(path), path).astype(np.float64)
    check_shape(raw, size, path)
    return torch.from_numpy(((raw - mean) / std).astype(np.float32)[None])


def decode_class_scene(path: Path) -> torch.Tensor:
    """int64 scalar: the stored class index, or the argmax of stored class scores."""
    raw = np.asarray(read_npy(path))
    if raw.ndim == 0 and np.issubdtype(raw.dtype, np.integer):
        return torch.tensor(int(raw), dtype=torch.int64)
    if raw.ndim == 1 and raw.size > 0 and np.isfinite(raw).all():
        return torch.tensor(int(np.argmax(raw)), dtype=torch.int64)
    raise ValueError(
        f"{path} holds shape {raw.shape} of {raw.dtype}; expected an integer class index "
        "or a 1-D vector of finite class scores"
    )


class TaskonomyDataModule(DenseDataModule):
    """Taskonomy train and val buildings, resized to ``input_size`` (default 256 x 256).

    Args:
        root: the Taskonomy folder (relative paths are taken from the launch directory).
        buildings: ``{"train": ..., "val": ...}``, each a list of building names or
            the path of a text file with one building per line.
        targets: any of ``segment_semantic, depth_zbuffer, normal, edge_texture,
            keypoints2d, class_scene``; default the first five.
        regression_stats: ``{target: (mean, std)}`` of the raw 16-bit regression maps.
        **kwargs: the other arguments of :class:`~mtl.data.base.DenseDataModule`.
    """

    dataset_name = "Taskonomy"
    known_targets = TARGETS
    kinds = KINDS
    default_input_size = (256, 256)

    def __init__(
        self,
        root: str | Path,
        buildings: Mapping[str, Sequence[str] | str],
        targets: Sequence[str] = TARGETS[:5],
        regression_stats: Mapping[str, Sequence[float]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(root, targets, **kwargs)
        missing = [split for split in ("train", "val") if split not in buildings]
        if missing:
            raise ValueError(
                f"buildings has no {missing} entry; give buildings: {{train: [...], val: [...]}}"
            )
        self.buildings = {split: buildings[split] for split in buildings}
        self.regression_stats = {k: tuple(v) for k, v in (regression_stats or {}).items()}

    def make_dataset(self, split: str) -> Dataset:
        if split not in self.buildings:
            raise ValueError(f"no buildings for split {split!r}; known: {sorted(self.buildings)}")
        buildings = read_buildings(self.buildings[split])
        return TaskonomyMT(
            self.root, buildings, self.targets, self.transform(split), self.regression_stats
        )
