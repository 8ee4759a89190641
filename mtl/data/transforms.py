"""Reading dataset files into tensors, and transforming a sample's image and targets jointly.

A joint transform changes every map of a sample in the same way, and each map
in the way its kind allows. The kinds:

- ``image``: float (C, H, W); bilinear resizing; normalised last.
- ``label``: int64 (H, W) class ids, 255 = ignore; nearest resizing.
- ``depth``: float (1, H, W), 0 = invalid; nearest resizing.
- ``normals``: float (3, H, W) unit (x, y, z), all-zero = invalid; nearest
  resizing; a horizontal flip negates x.
- ``edges``: float (1, H, W) in {0, 1}; nearest resizing.
- ``offsets``: float (2, H, W) = (dy, dx) to the instance centre in pixels, NaN =
  no instance; nearest resizing, then scaled by the resize factor; a
  horizontal flip negates dx.
- ``regression``: float (C, H, W) smooth map, NaN = invalid; bilinear resizing
  that never mixes in invalid pixels.
- ``scalar``: image-level target; untouched.

Random transforms draw from a ``torch.Generator`` when one is given, else from
torch's global generator (which data-loader workers seed per worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Sample = dict[str, torch.Tensor]

KINDS = ("image", "label", "depth", "normals", "edges", "offsets", "regression", "scalar")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255

# What fills pixels that padding adds: ignore or invalid wherever the kind has a marker.
PAD_FILL = {
    "image": 0.0,
    "label": float(IGNORE_INDEX),
    "depth": 0.0,
    "normals": 0.0,
    "edges": 0.0,
    "offsets": float("nan"),
    "regression": float("nan"),
}


# Reading files ---------------------------------------------------------------------------------


def _unreadable(path: Path, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"cannot read {path}: {error}. The file is corrupt or truncated; "
        "replace it with a fresh copy from the dataset archive"
    )


def read_image_array(path: str | Path) -> np.ndarray:
    """The pixels of an image file as stored; errors name the file.

    16-bit PNGs keep all 16 bits; palette PNGs give their indices (the class ids).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}; the dataset folder is incomplete")
    try:
        with Image.open(path) as image:
            image.load()
            return np.array(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise _unreadable(path, error) from error


def read_rgb(path: str | Path) -> torch.Tensor:
    """An 8-bit RGB image file as float32 (3, H, W) in [0, 1]; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}; the dataset folder is incomplete")
    try:
        with Image.open(path) as image:
            array = np.array(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise _unreadable(path, error) from error
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def read_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` array; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}; the dataset folder is incomplete")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise _unreadable(path, error) from error


def check_shape(array: np.ndarray | torch.Tensor, size: Sequence[int], path: Path) -> None:
    """Raise unless the map in ``path`` has the image's (height, width)."""
    if tuple(array.shape[:2]) != tuple(size):
        raise ValueError(
            f"{path} has shape {tuple(array.shape)} but its image is {tuple(size)} (H, W); "
            "the file does not belong to this image or is corrupt"
        )


def dataset_not_found(
    name: str, folder: Path, missing: Iterable[str], expected: str, source: str
) -> FileNotFoundError:
    """The error for a missing or incomplete dataset folder: where, what, and how to get it."""
    missing = sorted(missing)
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return FileNotFoundError(
        f"{name} not found or incomplete in {folder} (missing: {shown}). Expected there: "
        f"{expected}. {source} Point the data config's root (or the MTL_DATA environment "
        "variable) at the folder that holds it."
    )


def missing_files(root: Path, paths: Iterable[str | Path]) -> list[str]:
    """Those of ``paths`` that are not files, relative to ``root`` (for :func:`dataset_not_found`)."""
    return [str(Path(p).relative_to(root)) for p in paths if not Path(p).is_file()]


def check_targets(targets: Iterable[str], known: Iterable[str], dataset: str) -> list[str]:
    """``targets`` as a list, or an error naming the unknown ones and the allowed set."""
    targets, known = list(targets), list(known)
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise ValueError(f"unknown {dataset} targets {unknown}; choose from {known}")
    if not targets:
        raise ValueError(f"no {dataset} targets given; choose from {known}")
    return targets


# Resizing one map ------------------------------------------------------------------------------


def resize_map(value: torch.Tensor, kind: str, size: Sequence[int]) -> torch.Tensor:
    """``value`` of the given kind resized to ``size`` = (height, width)."""
    if kind == "scalar":
        return value
    height, width = int(size[0]), int(size[1])
    planar = value.ndim == 2
    maps = value.unsqueeze(0) if planar else value
    in_height, in_width = maps.shape[-2:]
    if (in_height, in_width) == (height, width):
        return value

    if kind == "image":
        resized = _bilinear(maps.float(), (height, width))
    elif kind == "regression":
        resized = _bilinear_valid_only(maps.float(), (height, width))
    else:
        resized = F.interpolate(maps[None].float(), (height, width), mode="nearest-exact")[0]
        resized = resized.to(value.dtype)

    if kind == "offsets":
        factor = torch.tensor([height / in_height, width / in_width], dtype=resized.dtype)
        resized = resized * factor.view(2, 1, 1)
    return resized[0] if planar else resized


def _bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps[None], size, mode="bilinear", align_corners=False, antialias=True)[0]


def _bilinear_valid_only(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    valid = torch.isfinite(maps)
    if bool(valid.all()):
        return _bilinear(maps, size)

    # Weighted by validity, so no invalid pixel contributes to a valid output pixel.
    weight = _bilinear(valid.float(), size)
    total = _bilinear(torch.where(valid, maps, torch.zeros_like(maps)), size)
    still_valid = F.interpolate(valid[None].float(), size, mode="nearest-exact")[0] > 0
    still_valid &= weight > 1e-6
    return torch.where(still_valid, total / weight.clamp_min(1e-6), torch.nan)


# Joint transforms ------------------------------------------------------------------------------


class JointTransform:
    """One step applied to every map of a sample according to its kind."""

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        raise NotImplementedError


def _height_width(sample: Sample, kinds: Mapping[str, str]) -> tuple[int, int]:
    for key, value in sample.items():
        if kinds[key] != "scalar":
            return int(value.shape[-2]), int(value.shape[-1])
    raise ValueError(f"sample with keys {sorted(sample)} has no spatial map to transform")


class Resize(JointTransform):
    """Resize every map to ``size`` = (height, width)."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        return {key: resize_map(value, kinds[key], self.size) for key, value in sample.items()}

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomScale(JointTransform):
    """Resize every map by one factor drawn uniformly from ``scale_range``."""

    def __init__(self, scale_range: Sequence[float] = (1.0, 1.5)) -> None:
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        low, high = self.scale_range
        scale = low + (high - low) * float(torch.rand(1, generator=generator))
        height, width = _height_width(sample, kinds)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return {key: resize_map(value, kinds[key], size) for key, value in sample.items()}

    def __repr__(self) -> str:
        return f"RandomScale(scale_range={self.scale_range})"


class RandomCrop(JointTransform):
    """Cut the same random ``size`` window out of every map, padding first if the maps are smaller.

    Padding fills labels with 255, depth, normals and edges with 0, offsets and
    regression maps with NaN, and the image with 0 (before normalisation).
    """

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        crop_height, crop_width = self.size
        height, width = _height_width(sample, kinds)
        padded_height, padded_width = max(height, crop_height), max(width, crop_width)
        top = _randint(padded_height - crop_height + 1, generator)
        left = _randint(padded_width - crop_width + 1, generator)

        cropped = {}
        for key, value in sample.items():
            kind = kinds[key]
            if kind == "scalar":
                cropped[key] = value
                continue
            if (padded_height, padded_width) != (height, width):
                canvas = (*value.shape[:-2], padded_height, padded_width)
                padded = value.new_full(canvas, PAD_FILL[kind])
                padded[..., :height, :width] = value
                value = padded
            cropped[key] = value[..., top : top + crop_height, left : left + crop_width]
        return cropped

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(0, high, (1,), generator=generator))


class RandomHorizontalFlip(JointTransform):
    """Mirror every map left-right with probability ``p``; negate normals' x and offsets' dx."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        if float(torch.rand(1, generator=generator)) >= self.p:
            return sample
        return hflip(sample, kinds)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def hflip(sample: Sample, kinds: Mapping[str, str]) -> Sample:
    """``sample`` mirrored left-right, with normals' x and offsets' dx negated."""
    flipped = {}
    for key, value in sample.items():
        kind = kinds[key]
        if kind == "scalar":
            flipped[key] = value
            continue
        value = value.flip(-1)
        if kind in ("normals", "offsets"):
            channel = 0 if kind == "normals" else 1
            value = value.clone()
            value[channel] = -value[channel]
        flipped[key] = value
    return flipped


class Normalize(JointTransform):
    """Standardise the image channels: ``(image - mean) / std``."""

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"need one positive std per mean, got mean={mean} std={std}")

    def __call__(
        self, sample: Sample, kinds: Mapping[str, str], generator: torch.Generator | None = None
    ) -> Sample:
        normalised = dict(sample)
        for key, value in sample.items():
            if kinds[key] != "image":
                continue
            if value.shape[0] != len(self.mean):
                raise ValueError(
                    f"{key!r} has {value.shape[0]} channels but mean/std have {len(self.mean)}"
                )
            mean = torch.tensor(self.mean, dtype=value.dtype).view(-1, 1, 1)
            std = torch.tensor(self.std, dtype=value.dtype).view(-1, 1, 1)
            normalised[key] = (value - mean) / std
        return normalised

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class JointCompose:
    """Apply ``transforms`` in order to samples whose keys have the given ``kinds``."""

    def __init__(self, transforms: Sequence[JointTransform], kinds: Mapping[str, str]) -> None:
        bad = {key: kind for key, kind in kinds.items() if kind not in KINDS}
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {KINDS}")
        self.transforms = list(transforms)
        self.kinds = dict(kinds)

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        unknown = [key for key in sample if key not in self.kinds]
        if unknown:
            raise ValueError(
                f"sample keys {unknown} have no kind; known keys: {sorted(self.kinds)}"
            )
        for transform in self.transforms:
            sample = transform(sample, self.kinds, generator)
        return sample

    def __repr__(self) -> str:
        steps = "".join(f"\n  {transform!r}," for transform in self.transforms)
        return f"JointCompose([{steps}\n])"


def build_transform(
    kinds: Mapping[str, str],
    input_size: Sequence[int],
    augment: bool,
    scale_range: Sequence[float] = (1.0, 1.5),
    flip_prob: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> JointCompose:
    """Resize to ``input_size``; when augmenting, then random scale, crop back and flip; normalise.

    Scales of at least 1 never need padding; smaller ones pad with ignore/invalid markers.
    """
    steps: list[JointTransform] = [Resize(input_size)]
    if augment:
        steps += [
            RandomScale(scale_range),
            RandomCrop(input_size),
            RandomHorizontalFlip(flip_prob),
        ]
    steps.append(Normalize(mean, std))
    return JointCompose(steps, kinds)
