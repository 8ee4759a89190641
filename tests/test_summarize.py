"""Sweep summaries from report.json files."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mtl.summarize import main, summarize


def write_report(folder, parameters, cost, gain):
    folder.mkdir(parents=True)
    report = {
        "parameters": parameters,
        "delta_m_percent": gain,
        "search": {"cost": cost, "resources": {"params": parameters, "flops": 10.0}},
    }
    (folder / "report.json").write_text(json.dumps(report))


def test_rows_csv_figure_and_rank_correlation(tmp_path):
    # Costs 0.1, 0.2, 0.3, 0.4 with gains 4, 3, 1, 2: ranks (1,2,3,4) vs (4,3,1,2),
    # d^2 = 9 + 1 + 4 + 4 = 18, rho = 1 - 6 * 18 / (4 * 15) = -0.8.
    for i, (cost, gain) in enumerate([(0.1, 4.0), (0.2, 3.0), (0.3, 1.0), (0.4, 2.0)]):
        write_report(tmp_path / str(i), 1000 * (i + 1), cost, gain)
    result = summarize(tmp_path)
    assert result["cost_gain_spearman"] == pytest.approx(-0.8)
    assert [r["parameters"] for r in result["rows"]] == [1000, 2000, 3000, 4000]
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert len((tmp_path / "sweep.csv").read_text().strip().splitlines()) == 5


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_a_sweep_with_a_failing_job_keeps_the_summary_of_the_others(tmp_path):
    """A real Hydra multirun: the second budget is infeasible, the first run is summarised."""
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "mtl.run",
        "-m",
        "budget=0.6,1000",
        "+experiment=digits",
        "data.limit=48",
        "data.batch_size=16",
        "logger=csv",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "affinity.num_images=16",
        "tradeoff=false",
        f"cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(
        command,
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode != 0  # Hydra reports the failed job
    assert "feasible range" in done.stderr
    with open(sweep / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == ["0"]
    assert (sweep / "sweep.png").exists()
