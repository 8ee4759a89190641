"""The whole pipeline through the real Hydra configs, on a small slice of the bundled digits."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtl.branching.tree import BranchedTree
from mtl.run import build, run

DIGITS = ["+experiment=digits", "data.limit=48", "data.batch_size=16"]


def test_digits_end_to_end_and_cache_reuse(tiny_config, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    report = run(tiny_config(*DIGITS, "budget=0.6"))
    out = tmp_path / "out"
    for name in (
        "affinity.npy",
        "dissimilarity.npy",
        "affinity.png",
        "tree.yaml",
        "tree.png",
        "tradeoff.png",
        "report.json",
    ):
        assert (out / name).exists(), name
    assert list((out / "csv").rglob("metrics.csv"))

    saved = json.loads((out / "report.json").read_text())
    tasks = ["digit", "parity", "large", "strokes", "edges", "clean"]
    assert saved["tree"]["tasks"] == tasks
    assert np.load(out / "dissimilarity.npy").shape == (4, 6, 6)

    # Delta_m recomputed by hand from the per-task numbers of the report.
    gains = []
    for row in saved["tasks"]:
        sign = 1 if row["direction"] == "higher is better" else -1
        gains.append(sign * (row["branched"] - row["single-task"]) / abs(row["single-task"]))
    assert saved["delta_m_percent"] == pytest.approx(100 * sum(gains) / len(gains))
    assert report["delta_m_percent"] == pytest.approx(saved["delta_m_percent"])

    # The chosen tree is within budget and the trained network has exactly its parameters.
    tree_file = yaml.safe_load((out / "tree.yaml").read_text())
    assert tree_file["resources"]["params"] <= tree_file["limits"]["params"]
    assert saved["parameters"] == tree_file["resources"]["params"]
    assert BranchedTree.from_dict(tree_file).to_dict() == saved["tree"]
    assert "Training the single-task network for 'digit'" in caplog.text

    # The checkpoint carries the tree: a fresh module rebuilds the same network from it.
    checkpoint = torch.load(
        out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    _, fresh, _, _ = build(tiny_config(*DIGITS, "budget=0.6"))
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.tree.to_dict() == saved["tree"]
    assert fresh.network.num_parameters() == saved["parameters"]

    # A second run with another budget reuses every cached single-task network.
    caplog.clear()
    run(tiny_config(*DIGITS, "budget=0.9"))
    assert caplog.text.count("Reusing the cached single-task network") == len(tasks)
    assert "Training the single-task network" not in caplog.text

    # With the cache warm, the same settings train the same branched network as the cold run.
    again = run(tiny_config(*DIGITS, "budget=0.6"))
    assert again["tree"] == saved["tree"]
    assert [row["branched"] for row in again["tasks"]] == [
        row["branched"] for row in saved["tasks"]
    ]


def test_flops_budget_limits_the_tree(tiny_config, tmp_path):
    run(tiny_config(*DIGITS, "budget=1.0", "flops_budget=0.45", "tradeoff=false"))
    tree = yaml.safe_load((tmp_path / "out" / "tree.yaml").read_text())
    assert tree["resources"]["flops"] <= tree["limits"]["flops"]
    # The FLOP limit binds: the parameter budget alone would allow the separate networks.
    assert tree["resources"]["params"] < tree["limits"]["params"]
    assert not (tmp_path / "out" / "tradeoff.png").exists()


def test_budget_outside_range_fails_before_training(tiny_config, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(ValueError, match="feasible range"):
        run(tiny_config(*DIGITS, "budget=1000"))
    assert "Training the single-task network" not in caplog.text


def test_fixed_tree_skips_the_search(tiny_config, tmp_path):
    tree = "{tasks: [digit, strokes], blocks: [[[digit, strokes]], [[digit, strokes]], [[digit], [strokes]], [[digit], [strokes]]]}"
    report = run(
        tiny_config(
            *DIGITS,
            "~tasks.parity",
            "~tasks.large",
            "~tasks.edges",
            "~tasks.clean",
            f"tree={tree}",
        )
    )
    assert report["tree"]["blocks"][2] == [["digit"], ["strokes"]]
    assert report["search"] is None
    written = yaml.safe_load((tmp_path / "out" / "tree.yaml").read_text())
    assert written["blocks"] == report["tree"]["blocks"]
    assert written["params"] == report["parameters"]
    assert (tmp_path / "out" / "tree.png").exists()


TWO_TASKS = [*DIGITS, "~tasks.parity", "~tasks.large", "~tasks.edges", "~tasks.clean"]


def test_fixed_tree_from_a_tree_file_in_another_order_and_over_budget(
    tiny_config, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    separate = {"tasks": ["strokes", "digit"], "blocks": [[["strokes"], ["digit"]]] * 4}
    given = tmp_path / "given.yaml"
    given.write_text(yaml.safe_dump({**separate, "cost": 0.5}))
    report = run(tiny_config(*TWO_TASKS, f"tree={given}", "budget=0.6"))
    assert report["tree"]["tasks"] == ["digit", "strokes"]
    assert report["tree"]["blocks"] == [[["digit"], ["strokes"]]] * 4
    # Two separate networks are about twice the shared one: above 60% of the separate size.
    assert "above the budget" in caplog.text


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            "{tasks: [digit, strokes], blocks: [[[digit, strokes]], [[digit], [strokes]]]}",
            "has 2 blocks but the encoder has 4",
        ),
        (
            "{tasks: [digit], blocks: [[[digit]], [[digit]], [[digit]], [[digit]]]}",
            "not the configured tasks",
        ),
        (
            "{tasks: [digit, strokes], blocks: [[[[digit, strokes]]]]}",
            "lists of clusters of task names",
        ),
        ("no/such/tree.yaml", "no such file"),
    ],
)
def test_a_bad_fixed_tree_fails_before_training(tiny_config, caplog, tree, message):
    caplog.set_level(logging.INFO)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run(tiny_config(*TWO_TASKS, f"tree={tree}"))
    assert "Training the single-task network" not in caplog.text


def test_command_line_as_written_in_the_readme(tmp_path):
    """The promised command line, with the default W&B logger: offline, it never asks to log in."""
    env = {**os.environ, "MTL_CACHE": str(tmp_path / "cache"), "WANDB_API_KEY": ""}
    command = [
        sys.executable,
        "-m",
        "mtl.run",
        "+experiment=digits",
        "budget=0.5",
        *DIGITS[1:],
        "trainer.max_epochs=1",
        "affinity.num_images=16",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(
        command,
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Delta_m" in done.stdout + done.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "report.json").exists()
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert list((run_dir / "csv").rglob("metrics.csv"))
