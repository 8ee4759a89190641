"""Cityscapes: trainIds, instance offsets, disparity to depth, the data module and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mtl.data.cityscapes import LABEL_TO_TRAIN_ID, CityscapesDataModule, CityscapesMT
from tests.data.fixtures import (
    cityscapes_stem,
    save_png,
    write_cityscapes,
    write_cityscapes_sample,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
NAN = math.nan


@pytest.fixture()
def cityscapes(tmp_path):
    """Tiny Cityscapes plus one hand-written 3 x 4 validation image, frankfurt_000000_000000."""
    root = write_cityscapes(tmp_path, num_train=2, num_val=1, size=(3, 4))
    label_ids = np.array([[7, 26, 26, 8], [0, 26, 24, 24], [26, 33, 24, 255]], np.uint8)
    instance_ids = np.array(
        [[7, 26000, 26000, 8], [0, 26000, 24001, 24001], [26, 33, 24001, 0]], np.uint16
    )
    disparity = np.array([[0, 1, 257, 513], [25601, 0, 0, 0], [0, 0, 0, 65535]], np.uint16)
    camera = {"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": 2000.0}}
    image = np.zeros((3, 4, 3), np.uint8)
    stem = "frankfurt_000000_000000"
    write_cityscapes_sample(
        root, "val", "frankfurt", stem, image, label_ids, instance_ids, disparity, camera
    )
    return root


def test_label_ids_map_to_train_ids(cityscapes) -> None:
    semseg = CityscapesMT(cityscapes, "val", ["semseg"])[0]["semseg"]
    # road 7 -> 0, car 26 -> 13, sidewalk 8 -> 1, unlabeled 0 -> 255, person 24 -> 11,
    # bicycle 33 -> 18, stored 255 (license plate) -> 255.
    expected = [[0, 13, 13, 1], [255, 13, 11, 11], [13, 18, 11, 255]]
    assert semseg.dtype == torch.int64
    assert semseg.tolist() == expected


def test_train_id_table_matches_the_official_labels() -> None:
    official = {c.id: c.train_id for c in torchvision.datasets.Cityscapes.classes if c.id >= 0}
    for label_id, train_id in official.items():
        assert LABEL_TO_TRAIN_ID[label_id] == (255 if train_id in (-1, 255) else train_id)
    assert sorted(set(LABEL_TO_TRAIN_ID.tolist()) - {255}) == list(range(19))


def test_instance_offsets_point_to_hand_computed_centres(cityscapes) -> None:
    offsets = CityscapesMT(cityscapes, "val", ["instance"])[0]["instance"]
    assert offsets.shape == (2, 3, 4)
    third = 1.0 / 3.0
    # Car 26000 covers (0,1), (0,2), (1,1): centre (1/3, 4/3).
    # Person 24001 covers (1,2), (1,3), (2,2): centre (4/3, 7/3).
    # The crowd pixel (2,0) holds the plain class id 26: no instance.
    dy = [
        [NAN, third, third, NAN],
        [NAN, -2 * third, third, third],
        [NAN, NAN, -2 * third, NAN],
    ]
    dx = [
        [NAN, third, -2 * third, NAN],
        [NAN, third, third, -2 * third],
        [NAN, NAN, third, NAN],
    ]
    assert torch.allclose(offsets, torch.tensor([dy, dx]), equal_nan=True, atol=1e-6)


def test_disparity_converts_to_metres(cityscapes) -> None:
    depth = CityscapesMT(cityscapes, "val", ["depth"])[0]["depth"]
    # depth = baseline * fx / ((p - 1) / 256) = 400 / d; p = 0 is invalid and p = 1 is d = 0.
    expected = [
        [0.0, 0.0, 400.0, 200.0],
        [4.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 400.0 * 256.0 / 65534.0],
    ]
    assert depth.shape == (1, 3, 4)
    assert torch.allclose(depth[0], torch.tensor(expected))


def test_files_are_listed_in_sorted_order(cityscapes) -> None:
    dataset = CityscapesMT(cityscapes, "train")
    names = [Path(p).name for p in dataset.images]
    assert names == [f"{cityscapes_stem('aachen', i)}_leftImg8bit.png" for i in range(2)]
    val = CityscapesMT(cityscapes, "val")
    assert Path(val.images[0]).name == "frankfurt_000000_000000_leftImg8bit.png"
    assert len(val) == 2


def test_data_module_resizes_offsets_with_the_image(cityscapes) -> None:
    module = CityscapesDataModule(root=cityscapes, input_size=(6, 8), batch_size=2)
    module.setup("fit")
    sample = module.val_set[0]
    assert sample["image"].shape == (3, 6, 8)
    assert sample["semseg"][0].tolist() == [0, 0, 13, 13, 13, 13, 1, 1]
    # Doubling both sides doubles every offset; the car's top-left pixel now points +2/3, +2/3.
    assert sample["instance"][:, 0, 2].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert sample["depth"][0, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 400.0, 400.0, 200.0, 200.0]

    batch = next(iter(module.train_dataloader()))
    assert batch["instance"].shape == (2, 2, 6, 8)


def test_config_reads_root_from_environment(cityscapes, monkeypatch) -> None:
    monkeypatch.setenv("MTL_DATA", str(cityscapes.parent))
    config = OmegaConf.create(
        {"data": OmegaConf.load(CONF / "cityscapes.yaml"), "tasks": {"semseg": {}, "depth": {}}}
    )
    module = instantiate(config.data, input_size=[3, 4])
    assert module.root == cityscapes
    assert module.targets == ["semseg", "depth"]
    module.setup("fit")
    assert len(module.val_set) == 2


def test_missing_folder_names_folder_contents_and_source(cityscapes) -> None:
    for path in sorted((cityscapes / "disparity").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (cityscapes / "disparity").rmdir()
    with pytest.raises(FileNotFoundError) as error:
        CityscapesDataModule(root=cityscapes).setup("fit")
    message = str(error.value)
    assert str(cityscapes) in message and "disparity/train/" in message
    assert "leftImg8bit/<split>/<city>" in message and "cityscapes-dataset.com" in message

    CityscapesMT(cityscapes, "train", ["semseg", "instance"])  # disparity is not needed


def test_missing_label_file_is_named(cityscapes) -> None:
    stem = cityscapes_stem("aachen", 1)
    (cityscapes / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_instanceIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"{stem}_gtFine_instanceIds.png"):
        CityscapesMT(cityscapes, "train")


def test_corrupt_files_are_named(cityscapes) -> None:
    camera = cityscapes / "camera" / "val" / "frankfurt" / "frankfurt_000000_000000_camera.json"
    camera.write_text(json.dumps({"extrinsic": {}, "intrinsic": {"fx": 1.0}}))
    with pytest.raises(RuntimeError, match=str(camera)):
        CityscapesMT(cityscapes, "val", ["depth"])[0]

    labels = (
        cityscapes / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000000_gtFine_labelIds.png"
    )
    labels.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(RuntimeError, match=str(labels)):
        CityscapesMT(cityscapes, "val", ["semseg"])[0]

    save_png(labels, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=str(labels)):
        CityscapesMT(cityscapes, "val", ["semseg"])[0]
