"""NYUD_MT: decoding of every target, the data module, its config and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from mtl.data.nyud import NYUDMT, NYUDDataModule
from tests.data.fixtures import save_npy, save_png, write_nyud

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
NAN = math.nan


@pytest.fixture()
def nyud(tmp_path):
    """A tiny NYUD_MT whose first training image (img_5001) holds hand-written 2 x 3 targets."""
    root = write_nyud(tmp_path, num_train=2, num_val=1, size=(2, 3))
    save_png(root / "segmentation" / "img_5001.png", np.array([[0, 1, 40], [2, 0, 39]], np.uint8))
    depth = np.array([[0.0, 1.5, NAN], [10.25, 0.0, 3.0]], np.float32)
    save_npy(root / "depth" / "img_5001.npy", depth)
    normals = np.zeros((2, 3, 3), np.float32)
    normals[0, 0] = (0.6, 0.0, 0.8)
    normals[1, 2] = (0.0, -1.0, 0.0)
    save_npy(root / "normals" / "img_5001.npy", normals)
    save_npy(root / "edge" / "img_5001.npy", np.array([[0, 1, 0], [1, 1, 0]], np.float32))
    return root


def test_decodes_targets_pixel_by_pixel(nyud) -> None:
    sample = NYUDMT(nyud, "train")[0]

    assert sample["semseg"].dtype == torch.int64
    assert sample["semseg"].tolist() == [[255, 0, 39], [1, 255, 38]]
    assert sample["depth"].shape == (1, 2, 3)
    assert sample["depth"][0].tolist() == [[0.0, 1.5, 0.0], [10.25, 0.0, 3.0]]
    assert sample["normals"].shape == (3, 2, 3)
    assert sample["normals"][:, 0, 0].tolist() == pytest.approx([0.6, 0.0, 0.8])
    assert sample["normals"][:, 1, 2].tolist() == [0.0, -1.0, 0.0]
    assert sample["normals"][:, 0, 1].tolist() == [0.0, 0.0, 0.0]
    assert sample["edge"][0].tolist() == [[0, 1, 0], [1, 1, 0]]

    pixels = np.array(Image.open(nyud / "images" / "img_5001.jpg").convert("RGB"))
    assert torch.allclose(sample["image"], torch.from_numpy(pixels).permute(2, 0, 1) / 255.0)


def test_splits_follow_gt_sets(nyud) -> None:
    assert NYUDMT(nyud, "train").ids == ["img_5001", "img_5002"]
    assert NYUDMT(nyud, "val", targets=["depth"]).ids == ["img_5003"]
    assert set(NYUDMT(nyud, "val", targets=["depth"])[0]) == {"image", "depth"}


def test_data_module_normalises_the_image(nyud) -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    module = NYUDDataModule(root=nyud, input_size=(2, 3), batch_size=2, mean=mean, std=std)
    module.setup("fit")

    pixels = np.array(Image.open(nyud / "images" / "img_5003.jpg").convert("RGB"))
    expected = torch.from_numpy(pixels).permute(2, 0, 1) / 255.0 - torch.tensor(mean).view(3, 1, 1)
    expected = expected / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(module.val_set[0]["image"], expected, atol=1e-6)


def test_training_flip_mirrors_labels_and_normals_together(nyud) -> None:
    module = NYUDDataModule(root=nyud, input_size=(2, 3), scale_range=(1.0, 1.0))
    module.setup("fit")
    plain = [[255, 0, 39], [1, 255, 38]]
    mirrored = [[39, 0, 255], [38, 255, 1]]

    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        sample = module.train_set[0]
        normals = sample["normals"]
        if sample["semseg"].tolist() == plain:
            seen.add("plain")
            assert normals[:, 0, 0].tolist() == pytest.approx([0.6, 0.0, 0.8])
            assert normals[:, 1, 2].tolist() == [0.0, -1.0, 0.0]
        else:
            assert sample["semseg"].tolist() == mirrored
            seen.add("mirrored")
            assert normals[:, 0, 2].tolist() == pytest.approx([-0.6, 0.0, 0.8])
            assert normals[:, 1, 0].tolist() == [0.0, -1.0, 0.0]
            assert sample["depth"][0].tolist() == [[0.0, 1.5, 0.0], [3.0, 0.0, 10.25]]
    assert seen == {"plain", "mirrored"}


def test_data_module_loader_batches(nyud) -> None:
    module = NYUDDataModule(root=nyud, targets=["semseg", "edge"], input_size=(4, 6), batch_size=2)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (2, 3, 4, 6)
    assert batch["semseg"].shape == (2, 4, 6)
    assert batch["edge"].shape == (2, 1, 4, 6)


def test_config_reads_root_from_environment(tmp_path, monkeypatch) -> None:
    write_nyud(tmp_path, num_train=2, num_val=1, size=(6, 8))
    monkeypatch.setenv("MTL_DATA", str(tmp_path))
    config = OmegaConf.create(
        {
            "data": OmegaConf.load(CONF / "nyud.yaml"),
            "tasks": {"semseg": {}, "depth": {}, "normals": {}, "edge": {}},
        }
    )
    config.data.input_size = [6, 8]
    module = instantiate(config.data)
    assert isinstance(module, NYUDDataModule)
    assert module.root == tmp_path / "NYUD_MT"
    assert module.targets == ["semseg", "depth", "normals", "edge"]
    module.setup("fit")
    assert len(module.train_set) == 2


def test_missing_folder_names_folder_contents_and_source(nyud) -> None:
    (nyud / "normals" / "img_5001.npy").unlink()
    (nyud / "normals" / "img_5002.npy").unlink()
    (nyud / "normals" / "img_5003.npy").unlink()
    (nyud / "normals").rmdir()
    with pytest.raises(FileNotFoundError) as error:
        NYUDDataModule(root=nyud).setup("fit")
    message = str(error.value)
    assert str(nyud) in message
    assert "normals/" in message and "gt_sets/{train,val}.txt" in message
    assert "nyu_depth_v2" in message

    with pytest.raises(FileNotFoundError, match="nowhere"):
        NYUDMT(nyud.parent / "nowhere", "train", ["depth"])


def test_missing_listed_file_is_named(nyud) -> None:
    (nyud / "depth" / "img_5002.npy").unlink()
    with pytest.raises(FileNotFoundError, match="depth/img_5002.npy"):
        NYUDMT(nyud, "train")


def test_corrupt_files_are_named(nyud) -> None:
    (nyud / "depth" / "img_5002.npy").write_bytes(b"\x93NUMPY garbage")
    dataset = NYUDMT(nyud, "train")
    dataset[0]
    with pytest.raises(RuntimeError, match="img_5002.npy"):
        dataset[1]

    (nyud / "images" / "img_5003.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(RuntimeError, match="img_5003.jpg"):
        NYUDMT(nyud, "val")[0]


def test_wrong_shapes_and_values_are_named(nyud) -> None:
    save_npy(nyud / "edge" / "img_5002.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="img_5002.npy"):
        NYUDMT(nyud, "train", ["edge"])[1]
    save_png(nyud / "segmentation" / "img_5002.png", np.full((2, 3), 41, np.uint8))
    with pytest.raises(ValueError, match="img_5002.png"):
        NYUDMT(nyud, "train", ["semseg"])[1]


def test_unknown_target_lists_choices(nyud) -> None:
    with pytest.raises(ValueError, match="semseg"):
        NYUDDataModule(root=nyud, targets=["segmentation"])


def test_subclass_can_write_the_dataset_in_prepare_data(tmp_path) -> None:
    class Generated(NYUDDataModule):
        def prepare_data(self) -> None:
            write_nyud(self.root.parent, num_train=3, num_val=1, size=(4, 6))

    module = Generated(root=tmp_path / "NYUD_MT", targets=["semseg", "depth"], input_size=(4, 6))
    assert not (tmp_path / "NYUD_MT").exists(), "the constructor must not need the data"
    module.prepare_data()
    module.setup("fit")
    assert len(module.train_set) == 3
    assert len(list(module.rsa_dataloader(1))) == 1
