"""CelebA: attributes, partitions, the checksum bypass, the data module and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from mtl.data.celeba import ATTRIBUTES, CelebADataModule, CelebAMT
from tests.data.fixtures import write_celeba

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"


@pytest.fixture()
def celeba(tmp_path):
    """Tiny CelebA (4 train, 2 val, 1 test) whose attribute file is rewritten by hand."""
    root = write_celeba(tmp_path, num_train=4, num_val=2, num_test=1)
    rows = []
    for index in range(7):
        values = [-1] * 40
        values[ATTRIBUTES.index("Smiling")] = 1 if index % 2 == 0 else -1
        values[ATTRIBUTES.index("Male")] = 1 if index >= 3 else -1
        values[ATTRIBUTES.index("Young")] = 1
        rows.append(f"{index + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in values))
    text = "7\n" + " ".join(ATTRIBUTES) + " \n" + "\n".join(rows) + "\n"
    (root / "celeba" / "list_attr_celeba.txt").write_text(text)
    return root


def test_attributes_map_minus_one_to_zero(celeba) -> None:
    dataset = CelebAMT(celeba, "train", ["Smiling", "Male", "Young", "Bald"])
    assert dataset.files == ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
    smiling = [dataset[i]["Smiling"].item() for i in range(4)]
    male = [dataset[i]["Male"].item() for i in range(4)]
    assert smiling == [1.0, 0.0, 1.0, 0.0]
    assert male == [0.0, 0.0, 0.0, 1.0]
    sample = dataset[0]
    assert sample["Young"].dtype == torch.float32 and sample["Young"].shape == ()
    assert sample["Young"].item() == 1.0 and sample["Bald"].item() == 0.0

    pixels = np.array(Image.open(celeba / "celeba" / "img_align_celeba" / "000001.jpg"))
    assert torch.allclose(sample["image"], torch.from_numpy(pixels).permute(2, 0, 1) / 255.0)


def test_partitions_give_train_val_test(celeba) -> None:
    assert CelebAMT(celeba, "val", ["Smiling"]).files == ["000005.jpg", "000006.jpg"]
    assert CelebAMT(celeba, "test", ["Smiling"]).files == ["000007.jpg"]
    with pytest.raises(ValueError, match="valid"):
        CelebAMT(celeba, "valid", ["Smiling"])


def test_reads_copies_that_torchvision_rejects_by_checksum(celeba) -> None:
    with pytest.raises(RuntimeError, match="corrupted"):
        torchvision.datasets.CelebA(str(celeba), split="train")
    assert len(CelebAMT(celeba, "train")) == 4


def test_data_module_resizes_flips_and_normalises(celeba) -> None:
    module = CelebADataModule(
        root=celeba, targets=["Smiling", "Male"], input_size=(8, 8), batch_size=4
    )
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8)
    assert batch["Smiling"].shape == (4,) and batch["Smiling"].dtype == torch.float32

    val = module.val_set[0]["image"]
    raw = CelebAMT(celeba, "val", ["Smiling"])[0]["image"]
    resized = torch.nn.functional.interpolate(
        raw[None], (8, 8), mode="bilinear", align_corners=False, antialias=True
    )[0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(val, (resized - mean) / std, atol=1e-5)


def test_config_reads_root_from_environment(celeba, monkeypatch) -> None:
    monkeypatch.setenv("MTL_DATA", str(celeba))
    config = OmegaConf.create(
        {"data": OmegaConf.load(CONF / "celeba.yaml"), "tasks": {n: {} for n in ATTRIBUTES}}
    )
    module = instantiate(config.data)
    assert module.root == celeba and module.targets == list(ATTRIBUTES)
    assert module.input_size == (64, 64)
    module.setup("fit")
    assert len(module.train_set) == 4 and len(module.val_set) == 2


def test_missing_folder_names_folder_contents_and_source(tmp_path) -> None:
    (tmp_path / "celeba").mkdir()
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(FileNotFoundError) as error:
        CelebADataModule(root=tmp_path).setup("fit")
    message = str(error.value)
    assert str(tmp_path) in message and "celeba/img_align_celeba" in message
    assert "list_attr_celeba.txt" in message and "mmlab.ie.cuhk.edu.hk" in message


def test_missing_and_corrupt_files_are_named(celeba) -> None:
    (celeba / "celeba" / "img_align_celeba" / "000006.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000006.jpg"):
        CelebAMT(celeba, "val")

    image = celeba / "celeba" / "img_align_celeba" / "000002.jpg"
    image.write_bytes(image.read_bytes()[:40])
    with pytest.raises(RuntimeError, match=str(image)):
        CelebAMT(celeba, "train")[1]

    attributes = celeba / "celeba" / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    lines[4] = lines[4].replace(" 1", " 0", 1)
    attributes.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_attr_celeba.txt line 5"):
        CelebAMT(celeba, "train")


def test_unknown_attribute_lists_choices(celeba) -> None:
    with pytest.raises(ValueError, match="Smiling"):
        CelebADataModule(root=celeba, targets=["Smile"])
