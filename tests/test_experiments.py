"""Every experiment config, composed as users compose it, runs the whole pipeline on fixtures.

Each test writes a tiny dataset in the real on-disk format, points the experiment at it and
runs a fast_dev_run: single-task networks, RSA affinity, search, joint training and report.
ImageNet weights are switched off: tests never download.
"""

from pathlib import Path

import pytest
import yaml

from mtl.run import run
from tests.data.fixtures import write_celeba, write_cityscapes, write_nyud, write_taskonomy

FAST = [
    "trainer.fast_dev_run=true",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=2",
    "affinity.num_images=4",
    "data.num_workers=0",
    "data.batch_size=2",
]
# ImageNet weights off (tests never download) and slim ASPP heads (CPU time).
NO_DOWNLOAD = ["model.encoder.weights=null", "model.dense_head.hidden=16"]


def write_scenes(root: Path) -> Path:
    return root / "scenes"  # rendered by the data module itself on first use


CASES = {
    "nyud": (
        lambda root: write_nyud(root, num_train=4, num_val=4),
        ["data.input_size=[24,32]", *NO_DOWNLOAD],
    ),
    "cityscapes": (
        lambda root: write_cityscapes(root, num_train=4, num_val=4),
        ["data.input_size=[32,64]", *NO_DOWNLOAD],
    ),
    "taskonomy": (
        lambda root: write_taskonomy(root, num_train=4, num_val=4),
        ["data.input_size=[32,32]", *NO_DOWNLOAD],
    ),
    "celeba": (
        lambda root: write_celeba(root, num_train=4, num_val=4),
        ["data.input_size=[32,32]", "search.time_limit_s=5"],
    ),
    "scenes": (
        write_scenes,
        ["data.num_train=6", "data.num_val=4", "data.size=[32,32]", "data.input_size=[32,32]"],
    ),
    "digits": (lambda root: None, ["data.limit=8"]),
}


@pytest.mark.parametrize("experiment", sorted(CASES))
def test_experiment_runs_end_to_end(experiment, tiny_config, tmp_path):
    write, overrides = CASES[experiment]
    root = write(tmp_path / "data")
    data_root = [] if root is None else [f"data.root={root}"]
    cfg = tiny_config(f"+experiment={experiment}", *FAST, *data_root, *overrides)

    report = run(cfg)

    out = tmp_path / "out"
    assert (out / "tree.yaml").exists() and (out / "report.json").exists()
    assert report["tree"]["tasks"] == list(cfg.tasks.keys())
    tree = yaml.safe_load((out / "tree.yaml").read_text())
    assert len(tree["blocks"]) == len(tree["block_names"])
    assert report["parameters"] == tree["resources"]["params"] <= tree["limits"]["params"]
