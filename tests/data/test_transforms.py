"""Joint transforms: each kind resized, cropped and flipped the way its values allow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl.data.transforms import (
    JointCompose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    build_transform,
    hflip,
    read_image_array,
    read_npy,
    read_rgb,
    resize_map,
)
from tests.data.fixtures import save_jpg, save_npy, save_png

NAN = math.nan


def test_nearest_resize_of_labels_copies_ids() -> None:
    label = torch.tensor([[0, 1, 2, 255], [3, 4, 5, 6]])
    up = resize_map(label, "label", (4, 8))
    expected = torch.tensor(
        [
            [0, 0, 1, 1, 2, 2, 255, 255],
            [0, 0, 1, 1, 2, 2, 255, 255],
            [3, 3, 4, 4, 5, 5, 6, 6],
            [3, 3, 4, 4, 5, 5, 6, 6],
        ]
    )
    assert up.dtype == torch.int64
    assert torch.equal(up, expected)

    # Downsampling by 2 picks the pixel under each output centre: rows/cols 1 and 3.
    grid = torch.arange(16).view(4, 4)
    assert torch.equal(resize_map(grid, "label", (2, 2)), torch.tensor([[5, 7], [13, 15]]))


def test_nearest_resize_never_invents_values() -> None:
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (13, 17), generator=generator)
    label[label == 2] = 255
    depth = torch.rand(1, 13, 17, generator=generator) * 5
    depth[0, :, ::3] = 0.0
    for size in [(7, 9), (20, 31)]:
        assert set(resize_map(label, "label", size).unique().tolist()) <= {0, 1, 255}
        resized = resize_map(depth, "depth", size)
        assert set(resized.unique().tolist()) <= set(depth.unique().tolist())


def test_bilinear_resize_of_image() -> None:
    image = torch.tensor([[[0.0, 1.0]]])
    # Output centres map to input x = -0.25, 0.25, 0.75, 1.25 (clamped at the border).
    expected = torch.tensor([[[0.0, 0.25, 0.75, 1.0]]])
    assert torch.allclose(resize_map(image, "image", (1, 4)), expected)


def test_regression_resize_never_mixes_in_invalid_pixels() -> None:
    value = torch.tensor([[[1.0, 2.0, NAN, 4.0]]])
    resized = resize_map(value, "regression", (1, 8))
    # Input x = -0.25, 0.25, ..., 3.25; the weight of the NaN pixel is dropped and renormalised,
    # and outputs whose nearest input pixel is NaN stay NaN.
    expected = torch.tensor([[[1.0, 1.25, 1.75, 2.0, NAN, NAN, 4.0, 4.0]]])
    assert torch.allclose(resized, expected, equal_nan=True)


def test_offsets_scale_with_the_resize_factor() -> None:
    offsets = torch.tensor([[[1.0, -2.0], [NAN, 0.5]], [[3.0, 1.0], [NAN, -1.0]]])
    resized = resize_map(offsets, "offsets", (4, 6))
    # dy doubles (2 -> 4 rows), dx triples (2 -> 6 columns); each input pixel fills a 2 x 3 block.
    dy = torch.tensor([[2.0, -4.0], [NAN, 1.0]]).repeat_interleave(2, 0).repeat_interleave(3, 1)
    dx = torch.tensor([[9.0, 3.0], [NAN, -3.0]]).repeat_interleave(2, 0).repeat_interleave(3, 1)
    assert torch.allclose(resized, torch.stack([dy, dx]), equal_nan=True)


def test_hflip_mirrors_and_negates_normal_x_and_offset_dx() -> None:
    kinds = {"normals": "normals", "instance": "offsets", "semseg": "label", "smile": "scalar"}
    # One row of three pixels (x, y, z): (0.6, 0, 0.8), invalid (0, 0, 0), (-0.8, 0, 0.6).
    normals = torch.tensor([[0.6, 0.0, 0.8], [0.0, 0.0, 0.0], [-0.8, 0.0, 0.6]]).T.reshape(3, 1, 3)
    # A one-row instance 1000 over columns 0..1 (centre column 0.5); column 2 has no instance.
    offsets = torch.tensor([[[0.0, 0.0, NAN]], [[0.5, -0.5, NAN]]])
    sample = {
        "normals": normals,
        "instance": offsets,
        "semseg": torch.tensor([[3, 255, 7]]),
        "smile": torch.tensor(1.0),
    }
    flipped = hflip(sample, kinds)

    # Mirrored pixels in reverse order, x negated: (0.8, 0, 0.6), invalid, (-0.6, 0, 0.8).
    expected_normals = torch.tensor([[0.8, 0.0, 0.6], [0.0, 0.0, 0.0], [-0.6, 0.0, 0.8]])
    expected_normals = expected_normals.T.reshape(3, 1, 3)
    assert torch.allclose(flipped["normals"], expected_normals)
    # Mirrored, the instance covers columns 1..2 with centre 1.5: dx = 0.5, -0.5 there.
    expected_offsets = torch.tensor([[[NAN, 0.0, 0.0]], [[NAN, 0.5, -0.5]]])
    assert torch.allclose(flipped["instance"], expected_offsets, equal_nan=True)
    assert torch.equal(flipped["semseg"], torch.tensor([[7, 255, 3]]))
    assert flipped["smile"] == 1.0
    assert torch.equal(sample["normals"][:, 0, 0], torch.tensor([0.6, 0.0, 0.8])), "input changed"


def test_random_crop_cuts_one_window_and_pads_with_markers() -> None:
    kinds = {"image": "image", "semseg": "label", "depth": "depth", "instance": "offsets"}
    rows, cols = torch.meshgrid(torch.arange(5), torch.arange(6), indexing="ij")
    sample = {
        "image": (rows * 10 + cols).float()[None].repeat(3, 1, 1),
        "semseg": rows * 10 + cols,
        "depth": (rows * 10 + cols).float()[None] + 1,
        "instance": torch.ones(2, 5, 6),
    }
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        crop = RandomCrop((3, 4))(sample, kinds, generator)
        assert crop["semseg"].shape == (3, 4)
        assert torch.equal(crop["image"][0].long(), crop["semseg"])
        assert torch.equal(crop["depth"][0].long() - 1, crop["semseg"])

    padded = RandomCrop((7, 6))(sample, kinds, generator)
    assert torch.equal(padded["semseg"][:5], sample["semseg"])
    assert (padded["semseg"][5:] == 255).all()
    assert (padded["depth"][:, 5:] == 0).all()
    assert torch.isnan(padded["instance"][:, 5:]).all()
    assert (padded["image"][:, 5:] == 0).all()


def test_random_scale_resizes_all_maps_alike() -> None:
    kinds = {"image": "image", "semseg": "label", "instance": "offsets"}
    sample = {
        "image": torch.rand(3, 10, 20),
        "semseg": torch.zeros(10, 20, dtype=torch.long),
        "instance": torch.ones(2, 10, 20),
    }
    scaled = RandomScale((2.0, 2.0))(sample, kinds, torch.Generator().manual_seed(0))
    assert scaled["image"].shape == (3, 20, 40)
    assert scaled["semseg"].shape == (20, 40)
    assert torch.allclose(scaled["instance"], torch.full((2, 20, 40), 2.0))


def test_random_transforms_are_deterministic_under_a_seeded_generator() -> None:
    kinds = {"image": "image", "semseg": "label", "normals": "normals"}
    transform = build_transform(kinds, (8, 8), augment=True, scale_range=(1.0, 2.0))
    sample = {
        "image": torch.rand(3, 12, 12),
        "semseg": torch.randint(0, 5, (12, 12)),
        "normals": torch.rand(3, 12, 12),
    }
    first = transform(sample, torch.Generator().manual_seed(7))
    second = transform(sample, torch.Generator().manual_seed(7))
    for key in kinds:
        assert torch.equal(first[key], second[key])

    outcomes = {
        transform(sample, torch.Generator().manual_seed(seed))["semseg"].sum().item()
        for seed in range(8)
    }
    assert len(outcomes) > 1, "different seeds should give different crops"


def test_flip_probability_extremes() -> None:
    kinds = {"semseg": "label"}
    sample = {"semseg": torch.tensor([[1, 2]])}
    assert torch.equal(RandomHorizontalFlip(0.0)(sample, kinds)["semseg"], sample["semseg"])
    assert torch.equal(RandomHorizontalFlip(1.0)(sample, kinds)["semseg"], torch.tensor([[2, 1]]))


def test_normalize_uses_mean_and_std() -> None:
    sample = {"image": torch.full((3, 1, 1), 0.5), "depth": torch.ones(1, 1, 1)}
    kinds = {"image": "image", "depth": "depth"}
    out = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 2.0))(sample, kinds)
    assert torch.allclose(out["image"].flatten(), torch.tensor([0.0, 1.0, 0.25]))
    assert torch.equal(out["depth"], sample["depth"])


def test_compose_rejects_unknown_keys_and_kinds() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        JointCompose([], {"image": "picture"})
    transform = JointCompose([Resize((2, 2))], {"image": "image"})
    with pytest.raises(ValueError, match="'depth'"):
        transform({"image": torch.zeros(3, 4, 4), "depth": torch.zeros(1, 4, 4)})


def test_readers_keep_16_bits_and_name_corrupt_files(tmp_path) -> None:
    values = np.array([[0, 1, 300], [8192, 40000, 65535]], dtype=np.uint16)
    save_png(tmp_path / "deep.png", values)
    assert np.array_equal(read_image_array(tmp_path / "deep.png"), values)

    save_jpg(tmp_path / "ok.jpg", np.zeros((4, 4, 3), dtype=np.uint8))
    assert read_rgb(tmp_path / "ok.jpg").shape == (3, 4, 4)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    save_npy(tmp_path / "a.npy", np.ones(3))
    (tmp_path / "bad.npy").write_bytes(np.load(tmp_path / "a.npy").tobytes())

    for path, read in [
        (tmp_path / "cut.jpg", read_rgb),
        (tmp_path / "junk.png", read_image_array),
        (tmp_path / "bad.npy", read_npy),
    ]:
        with pytest.raises(RuntimeError, match=str(path)):
            read(path)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_image_array(tmp_path / "gone.png")
