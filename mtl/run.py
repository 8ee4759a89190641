"""The main job: single-task networks, affinity, budgeted tree search, joint training, report.

Usage::

    python -m mtl.run                                # the bundled digits
    python -m mtl.run +experiment=nyud budget=1.5M   # a setup and a budget
    python -m mtl.run -m budget=0.3,0.5,0.8          # a sweep over budgets
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
import pytorch_lightning as pl
import yaml
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger

from mtl.branching.budget import human
from mtl.report import delta_m, relative_gain, results_table
from mtl.training.callbacks import BranchSearchCallback
from mtl.training.module import MultiTaskModule

log = logging.getLogger("mtl")

# Settings that change how fast data loads but not what a network learns.
_NOT_IDENTITY = {"num_workers", "targets"}


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def fixed_tree(value) -> dict | None:
    """``tree=`` as plain data: inline (tasks and blocks) or the path of a ``tree.yaml``."""
    if value is None or not isinstance(value, str):
        return _plain(value)
    path = Path(to_absolute_path(value))
    if not path.is_file():
        raise FileNotFoundError(
            f"tree={value!r}: no such file {path}; give the tree.yaml of an earlier run "
            "or the tree inline, e.g. 'tree={tasks: [a, b], blocks: [[[a, b]], [[a], [b]]]}'"
        )
    with open(path) as f:
        return yaml.safe_load(f)


def single_task_identities(cfg: DictConfig) -> dict[str, str]:
    """Per task, a description of everything that determines its single-task network."""
    data = {k: v for k, v in _plain(cfg.data).items() if k not in _NOT_IDENTITY}
    common = {
        "data": data,
        "model": _plain(cfg.model),
        "optimizer": _plain(cfg.optimizer),
        "scheduler": _plain(cfg.scheduler),
    }
    return {
        name: json.dumps({**common, "task": _plain(task)}, sort_keys=True)
        for name, task in cfg.tasks.items()
    }


def build(
    cfg: DictConfig,
) -> tuple[pl.Trainer, MultiTaskModule, pl.LightningDataModule, BranchSearchCallback]:
    """Instantiate the data, the tasks, the module, the branch-search callback and the trainer."""
    output_dir = Path(cfg.output_dir)
    datamodule = instantiate(cfg.data)
    tasks = [instantiate(task) for task in cfg.tasks.values()]
    module = MultiTaskModule(
        encoder=instantiate(cfg.model.encoder),
        tasks=tasks,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        weighting=instantiate(cfg.weighting),
    )
    search_callback = BranchSearchCallback(
        search=instantiate(cfg.search),
        single_task=instantiate(cfg.single_task),
        budget=cfg.budget,
        flops_budget=cfg.flops_budget,
        num_images=cfg.affinity.num_images,
        pool=cfg.affinity.pool,
        output_dir=str(output_dir),
        identity=single_task_identities(cfg),
        tree=fixed_tree(cfg.tree),
        seed=cfg.seed,
        tradeoff=cfg.tradeoff,
    )
    checkpoints = ModelCheckpoint(dirpath=output_dir / "checkpoints", save_last=True, save_top_k=0)
    loggers = [instantiate(logger) for logger in (cfg.logger or {}).values()]
    trainer = instantiate(
        cfg.trainer, callbacks=[search_callback, checkpoints], logger=loggers or False
    )
    return trainer, module, datamodule, search_callback


def report(
    module: MultiTaskModule, search_callback: BranchSearchCallback, metrics: dict, output_dir: Path
) -> dict:
    """Per-task metrics of the branched and single-task networks, and Delta_m; printed and saved."""
    rows, higher, branched, single = [], {}, {}, {}
    for name, task in module.tasks.items():
        key = f"val/{name}/{task.main_metric}"
        branched[name] = float(metrics[key])
        single[name] = float(search_callback.singles[name].metrics[key])
        higher[name] = task.higher_is_better
        gain = relative_gain(branched[name], single[name], task.higher_is_better)
        if math.isnan(gain):
            log.warning(
                "Task %r: the single-task %s is 0, so its relative gain is undefined",
                name,
                task.main_metric,
            )
        rows.append(
            {
                "task": name,
                "metric": task.main_metric,
                "direction": task.direction,
                "single-task": single[name],
                "branched": branched[name],
                "gain %": None if math.isnan(gain) else gain,
            }
        )
    tree = module.tree
    result = search_callback.result
    summary = {
        "tree": tree.to_dict(),
        "parameters": module.network.num_parameters(),
        "search": None if result is None else result.to_dict(),
        "delta_m_percent": _finite_or_none(delta_m(branched, single, higher)),
        "delta_m_direction": "higher is better",
        "tasks": rows,
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    (output_dir / "report.json").write_text(json.dumps(summary, indent=2))
    text = "\n".join(
        [
            "",
            "Chosen tree:",
            tree.describe(),
            f"Parameters: {human(summary['parameters'])}"
            + ("" if result is None else f"   search cost: {result.cost:.4f} (lower is better)"),
            "",
            results_table(
                rows, ["task", "metric", "direction", "single-task", "branched", "gain %"]
            ),
            "",
            f"Delta_m = {_signed(summary['delta_m_percent'])}% vs. single-task networks (higher is better)",
            f"Outputs in {output_dir}",
        ]
    )
    log.info(text)
    return summary


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _signed(value: float | None) -> str:
    return "undefined " if value is None else f"{value:+.2f}"


def run(cfg: DictConfig) -> dict:
    """The whole pipeline for one composed configuration; returns the report."""
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer, module, datamodule, search_callback = build(cfg)
    try:
        trainer.fit(module, datamodule=datamodule)
        metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        return report(module, search_callback, metrics, output_dir)
    finally:
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
            import wandb

            wandb.finish()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns Delta_m so that sweepers can optimise it."""
    gain = run(cfg)["delta_m_percent"]
    return float("nan") if gain is None else gain


if __name__ == "__main__":
    main()
