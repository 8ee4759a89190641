"""Taskonomy: decoding per domain, label paths, building splits, the data module and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mtl.data.taskonomy import (
    KINDS,
    TARGETS,
    TINY_BUILDINGS,
    TaskonomyDataModule,
    TaskonomyMT,
)
from mtl.data.transforms import hflip
from tests.data.fixtures import save_npy, save_png, taskonomy_name, write_taskonomy

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
SMALL = {"train": ["allensville", "beechwood"], "val": ["collierville"]}


@pytest.fixture()
def taskonomy(tmp_path):
    """Tiny Taskonomy inside a folder named "rgb"; view (allensville, 0, 0) is hand-written."""
    root = write_taskonomy(tmp_path / "rgb", num_train=3, num_val=1, size=(2, 3), buildings=SMALL)

    def path(domain: str, extension: str = ".png") -> Path:
        return root / domain / "allensville" / taskonomy_name(0, 0, domain, extension)

    save_png(path("segment_semantic"), np.array([[0, 1, 2], [17, 3, 1]], np.uint8))
    depth = np.array([[0, 512, 8191], [8192, 65535, 1024]], np.uint16)
    save_png(path("depth_zbuffer"), depth)
    normal = np.zeros((2, 3, 3), np.uint8)
    normal[0, 0] = (0, 127, 255)
    normal[1, 2] = (255, 255, 0)
    save_png(path("normal"), normal)
    save_png(path("keypoints2d"), np.array([[100, 200, 0], [150, 50, 300]], np.uint16))
    save_png(path("edge_texture"), np.array([[0, 65535, 0], [0, 0, 0]], np.uint16))
    scores = np.zeros(365)
    scores[42] = 0.9
    save_npy(path("class_scene", ".npy"), scores)
    return root


def test_decodes_targets_pixel_by_pixel(taskonomy) -> None:
    stats = {"keypoints2d": (100.0, 50.0)}
    dataset = TaskonomyMT(taskonomy, ["allensville"], TARGETS, regression_stats=stats)
    assert dataset.views[0] == ("allensville", "0", "0")
    sample = dataset[0]

    assert sample["segment_semantic"].tolist() == [[255, 0, 1], [16, 2, 0]]
    expected_depth = [[0.0, 1.0, 8191 / 512], [0.0, 0.0, 2.0]]
    assert torch.allclose(sample["depth_zbuffer"][0], torch.tensor(expected_depth))
    assert sample["normal"][:, 0, 0].tolist() == pytest.approx([-1.0, 127 / 255 * 2 - 1, 1.0])
    assert sample["normal"][:, 1, 2].tolist() == pytest.approx([1.0, 1.0, -1.0])
    assert sample["keypoints2d"][0].tolist() == [[0.0, 2.0, -2.0], [1.0, -1.0, 4.0]]
    assert sample["edge_texture"][0].tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert sample["class_scene"].dtype == torch.int64 and sample["class_scene"].item() == 42


def test_flip_negates_normal_x(taskonomy) -> None:
    sample = TaskonomyMT(taskonomy, ["allensville"], ["normal"])[0]
    flipped = hflip(sample, KINDS)
    assert flipped["normal"][:, 0, 2].tolist() == pytest.approx([1.0, 127 / 255 * 2 - 1, 1.0])
    assert flipped["normal"][:, 1, 0].tolist() == pytest.approx([-1.0, 1.0, -1.0])


def test_label_paths_leave_rgb_in_parent_folders_alone(taskonomy) -> None:
    assert "rgb" in taskonomy.parent.name
    dataset = TaskonomyMT(taskonomy, ["allensville"], ["depth_zbuffer"])
    expected = (
        taskonomy / "depth_zbuffer" / "allensville" / "point_0_view_0_domain_depth_zbuffer.png"
    )
    assert dataset.path("depth_zbuffer", dataset.views[0]) == expected
    assert dataset[0]["depth_zbuffer"][0, 0, 1] == 1.0


def test_splits_are_by_building(taskonomy, tmp_path) -> None:
    listing = tmp_path / "train_buildings.txt"
    listing.write_text("# train\nallensville\nbeechwood\n")
    module = TaskonomyDataModule(
        root=taskonomy,
        buildings={"train": str(listing), "val": ["collierville"]},
        targets=["segment_semantic"],
        input_size=(4, 6),
        batch_size=2,
    )
    module.setup("fit")
    assert [view[0] for view in module.train_set.views] == ["allensville"] * 2 + ["beechwood"]
    assert [view[0] for view in module.val_set.views] == ["collierville"]
    batch = next(iter(module.train_dataloader()))
    assert batch["segment_semantic"].shape == (2, 4, 6)


def test_config_defaults_match_the_tiny_split_and_the_fixture(tmp_path, monkeypatch) -> None:
    write_taskonomy(tmp_path, size=(8, 8))
    monkeypatch.setenv("MTL_DATA", str(tmp_path))
    config = OmegaConf.create(
        {
            "data": OmegaConf.load(CONF / "taskonomy.yaml"),
            "tasks": {name: {} for name in TARGETS},
        }
    )
    assert OmegaConf.to_container(config.data.buildings) == {
        "train": TINY_BUILDINGS["train"],
        "val": TINY_BUILDINGS["val"],
    }
    module = instantiate(config.data, input_size=[8, 8], batch_size=5, num_workers=0)
    assert module.root == tmp_path / "taskonomy"
    module.setup("fit")
    assert len(module.train_set) == 25 and len(module.val_set) == 5
    batch = next(iter(module.val_dataloader()))
    assert batch["class_scene"].shape == (5,)
    assert not torch.isnan(batch["keypoints2d"]).any()


def test_missing_domain_names_folder_contents_and_source(taskonomy) -> None:
    with pytest.raises(FileNotFoundError) as error:
        TaskonomyMT(taskonomy, ["allensville", "hanson"], ["normal"])
    message = str(error.value)
    assert str(taskonomy) in message and "rgb/hanson/" in message and "normal/hanson/" in message
    assert "point_<P>_view_<V>_domain_<domain>.png" in message
    assert "StanfordVL/taskonomy" in message


def test_missing_and_corrupt_files_are_named(taskonomy) -> None:
    missing = taskonomy / "keypoints2d" / "beechwood" / taskonomy_name(1, 1, "keypoints2d")
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=taskonomy_name(1, 1, "keypoints2d")):
        TaskonomyMT(taskonomy, ["beechwood"], ["keypoints2d"])

    corrupt = taskonomy / "normal" / "allensville" / taskonomy_name(0, 0, "normal")
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(RuntimeError, match=str(corrupt)):
        TaskonomyMT(taskonomy, ["allensville"], ["normal"])[0]

    labels = (
        taskonomy / "segment_semantic" / "allensville" / taskonomy_name(0, 0, "segment_semantic")
    )
    save_png(labels, np.full((2, 3), 18, np.uint8))
    with pytest.raises(ValueError, match=str(labels)):
        TaskonomyMT(taskonomy, ["allensville"], ["segment_semantic"])[0]


def test_buildings_config_needs_train_and_val(taskonomy) -> None:
    with pytest.raises(ValueError, match="val"):
        TaskonomyDataModule(root=taskonomy, buildings={"train": ["allensville"]})
