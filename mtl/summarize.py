"""Summaries of a sweep: performance vs. parameters, and how well the search cost predicts gains.

After a Hydra multirun this runs by itself (``SweepSummary``); on any folder of
runs: ``python -m mtl.summarize multirun/2026-12-04/10-00-00``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from matplotlib.ticker import FuncFormatter
from scipy.stats import spearmanr

from mtl.branching.budget import human
from mtl.report import _pyplot

log = logging.getLogger(__name__)

COLUMNS = ("run", "parameters", "flops", "cost", "delta_m_percent")


def collect(folder: Path) -> list[dict[str, Any]]:
    """One row per ``report.json`` below ``folder``."""
    rows = []
    for path in sorted(folder.rglob("report.json")):
        report = json.loads(path.read_text())
        search = report.get("search") or {}
        rows.append(
            {
                "run": str(path.parent.relative_to(folder)),
                "parameters": report["parameters"],
                "flops": (search.get("resources") or {}).get("flops"),
                "cost": search.get("cost"),
                "delta_m_percent": report["delta_m_percent"],
            }
        )
    return rows


def cost_gain_correlation(rows: list[dict[str, Any]]) -> float | None:
    """Spearman correlation between search cost and Delta_m; None with fewer than 3 runs.

    A useful cost is strongly negative here: cheaper trees should gain more.
    """
    pairs = [
        (r["cost"], r["delta_m_percent"])
        for r in rows
        if r["cost"] is not None and r["delta_m_percent"] is not None
    ]
    if len(pairs) < 3:
        return None
    costs, gains = zip(*pairs)
    if len(set(costs)) < 2 or len(set(gains)) < 2:
        return None
    return float(spearmanr(costs, gains).statistic)


def summarize(folder: Path) -> dict[str, Any]:
    """Write ``sweep.csv`` and ``sweep.png`` into ``folder``; return the rows and correlation."""
    rows = collect(folder)
    if not rows:
        raise FileNotFoundError(
            f"no report.json below {folder}: is it a run or sweep folder of mtl?"
        )
    with open(folder / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    correlation = cost_gain_correlation(rows)

    plt = _pyplot()
    rows = [r for r in rows if r["delta_m_percent"] is not None]
    with_cost = [r for r in rows if r["cost"] is not None]
    fig, axes = plt.subplots(
        1, 2 if with_cost else 1, figsize=(10 if with_cost else 5, 4), squeeze=False
    )
    ax = axes[0][0]
    ax.scatter([r["parameters"] for r in rows], [r["delta_m_percent"] for r in rows])
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("parameters of the branched network")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: human(value)))
    ax.set_ylabel("Delta_m vs. single-task, % (higher is better)")
    ax.set_title("performance vs. parameters")
    if with_cost:
        ax = axes[0][1]
        ax.scatter([r["cost"] for r in with_cost], [r["delta_m_percent"] for r in with_cost])
        ax.set_xlabel("task-dissimilarity cost of the tree (lower is better)")
        ax.set_ylabel("Delta_m, % (higher is better)")
        rho = "n/a" if correlation is None else f"{correlation:+.2f}"
        ax.set_title(f"does the cost predict the gain? Spearman {rho}")
    fig.tight_layout()
    fig.savefig(folder / "sweep.png", dpi=120)
    plt.close(fig)
    log.info(
        "Summarised %d runs in %s (sweep.csv, sweep.png); cost vs. Delta_m Spearman: %s",
        len(rows),
        folder,
        "n/a" if correlation is None else f"{correlation:+.3f}",
    )
    return {"rows": rows, "cost_gain_spearman": correlation}


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep folder after every job of a multirun and at its end.

    Summarising after each job keeps ``sweep.csv`` and ``sweep.png`` current while the
    sweep runs, and keeps them when a later job fails and Hydra stops with its error.
    """

    def on_job_end(self, config, job_return=None, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        folder = Path(config.hydra.sweep.dir)
        if any(folder.rglob("report.json")):
            summarize(folder)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        try:
            summarize(folder)
        except FileNotFoundError as error:
            log.warning("%s", error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", type=Path, help="a run or sweep folder holding report.json files"
    )
    args = parser.parse_args(argv)
    try:
        result = summarize(args.folder)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
