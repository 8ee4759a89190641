"""``python -m mtl.search`` end to end: JSON out, one-line errors with exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtl.branching.search import ExhaustiveSearch, SearchProblem
from mtl.search import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK_PARAMS = [1000.0, 2000.0, 4000.0, 8000.0]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mtl.search", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dissimilarity(tmp_path):
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, size=(4, 5, 5))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[:, np.arange(5), np.arange(5)] = 0.0
    path = tmp_path / "dissimilarity.npy"
    np.save(path, d)
    return path, d


def test_prints_the_optimal_tree_as_json(dissimilarity, tmp_path):
    path, d = dissimilarity
    process = run_cli(
        path,
        "--block-params",
        "1K,2K,4K,8K",
        "--head-params",
        "500",
        "--tasks",
        "seg,depth,normals,edges,parts",
        "--budget",
        "0.5",
        "--tradeoff",
        tmp_path / "f.png",
    )
    assert process.returncode == 0, process.stderr
    out = json.loads(process.stdout)

    # Budget: half of the separate network, 500 + 5 * 15000 = 75500 -> 37750.
    assert out["budget"]["params"] == pytest.approx(37750)
    tasks = ("seg", "depth", "normals", "edges", "parts")
    problem = SearchProblem(tasks, d, {"params": BLOCK_PARAMS}, {"params": 500}, {"params": 37750})
    assert out["cost"] == pytest.approx(ExhaustiveSearch()(problem).cost, abs=1e-9)
    assert out["proven_optimal"] is True and out["lower_bound"] == out["cost"]
    assert out["parameters"] <= 37750 and out["flops"] is None
    assert out["tasks"] == list(tasks)
    assert len(out["blocks"]) == 4
    assert all(sorted(sum(block, [])) == sorted(tasks) for block in out["blocks"])
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert out["tradeoff"][-1]["cost"] == 0.0


def test_affinity_and_flops_budget(dissimilarity, tmp_path):
    path, d = dissimilarity
    affinity = tmp_path / "affinity.npy"
    np.save(affinity, 1 - d)
    common = [
        "--block-params",
        "1K,2K,4K,8K",
        "--block-flops",
        "8M,4M,2M,1M",
        "--budget",
        "30K",
        "--flops-budget",
        "0.4",
    ]
    assert main([str(path), *common, "--search", "exhaustive"]) == 0
    process = run_cli(affinity, "--affinity", *common, "--search", "anytime", "--time-limit", 1)
    assert process.returncode == 0, process.stderr
    out = json.loads(process.stdout)
    problem = SearchProblem(
        tuple(f"t{i}" for i in range(5)),
        d,
        {"params": BLOCK_PARAMS, "flops": [8e6, 4e6, 2e6, 1e6]},
        {"params": 0, "flops": 0},
        {"params": 30e3, "flops": 0.4 * 75e6},
    )
    optimum = ExhaustiveSearch()(problem).cost
    assert out["lower_bound"] <= optimum + 1e-9 <= out["cost"] + 1e-9
    assert out["parameters"] <= 30e3 and out["flops"] <= 0.4 * 75e6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.npy", "--block-params", "1,2,3,4", "--budget", "0.5"], "not found"),
        (
            ["{path}", "--block-params", "1,2,3", "--budget", "0.5"],
            "3 values but the tensor has 4",
        ),
        (["{path}", "--block-params", "1,2,3,4", "--budget", "0.1"], "outside the feasible range"),
    ],
)
def test_bad_input_subprocess(dissimilarity, args, message):
    path, _ = dissimilarity
    process = run_cli(*[a.format(path=path) for a in args])
    assert process.returncode == 2
    assert process.stdout == ""
    assert len(process.stderr.strip().splitlines()) == 1
    assert message in process.stderr and "Traceback" not in process.stderr


def broken(tmp_path, d, kind):
    bad = d.copy()
    if kind == "nan":
        bad[1, 0, 2] = np.nan
    elif kind == "asymmetric":
        bad[1, 0, 2] += 0.3
    elif kind == "shape":
        bad = bad[:, :, :3]
    elif kind == "range":
        bad[2, 0, 1] = bad[2, 1, 0] = 3.0
    path = tmp_path / f"{kind}.npy"
    if kind == "text":
        np.savetxt(path, d.reshape(len(d), -1))
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, d=d)
    else:
        np.save(path, bad)
    return path


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("nan", [], "NaN"),
        ("asymmetric", [], "symmetric"),
        ("shape", [], "shape (blocks, tasks, tasks)"),
        ("range", [], "[0, 2]"),
        ("text", [], "is not a .npy file"),
        ("npz", [], "is not a .npy file"),
        ("ok", ["--tasks", "a,b"], "give 5 distinct names"),
        ("ok", ["--tasks", "a,b,a,c,b"], "['a', 'b'] more than once"),
        ("ok", ["--budget", "-0.5"], "must be positive"),
        ("ok", ["--search", "greedy"], "unknown --search"),
        ("ok", ["--flops-budget", "0.5"], "needs --block-flops"),
        ("ok", ["--budget", "1x"], "cannot read params budget"),
        ("ok", ["--search", "exhaustive", "--time-limit", "3"], "no time limit"),
        ("ok", ["--affinity"], "diagonal must be 1"),
    ],
)
def test_bad_input_in_process(dissimilarity, tmp_path, capsys, kind, extra, message):
    path, d = dissimilarity
    if kind != "ok":
        path = broken(tmp_path, d, kind)
    args = [str(path), "--block-params", "1,2,3,4", "--budget", "0.5", *extra]
    if "--budget" in extra:
        args = [str(path), "--block-params", "1,2,3,4", *extra]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert message in captured.err


@pytest.mark.parametrize("name", ["exact", "exhaustive", "anytime"])
def test_every_search_config_builds_a_working_search(tiny_config, dissimilarity, name):
    from hydra.utils import instantiate

    cfg = tiny_config(f"search={name}")
    search = instantiate(cfg.search)
    _, d = dissimilarity
    problem = SearchProblem(
        tuple(f"t{i}" for i in range(5)), d, {"params": BLOCK_PARAMS}, {}, {"params": 30e3}
    )
    if name == "anytime":
        search.time_limit_s = 0.5
    result = search(problem)
    assert result.algorithm == name
    assert result.cost == pytest.approx(ExhaustiveSearch()(problem).cost, abs=1e-9)
