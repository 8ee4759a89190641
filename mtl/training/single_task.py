"""Single-task networks: trained once per task and setting, cached on disk, reused."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from mtl.data.base import MultiTaskDataModule
from mtl.training.module import MultiTaskModule

log = logging.getLogger(__name__)


@dataclass
class SingleTaskResult:
    """A trained single-task module and its validation metrics."""

    module: MultiTaskModule
    metrics: dict[str, float]
    cached: bool
    key: str


def cache_key(identity: str) -> str:
    """Short hash of a description of everything that determines a single-task network."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class SingleTaskTrainer:
    """Trains one network per task with the main module's settings, or loads it from the cache.

    A cache entry lives under ``<cache_dir>/<key>/`` with the weights
    (``model.pt``), the validation metrics (``metrics.json``) and the settings
    that produced it (``identity.json``); the key hashes those settings. Writes go
    through a temporary file and a rename, so an interrupted run never leaves a
    half-written entry.

    Args:
        cache_dir: where trained networks are kept.
        max_epochs: training epochs per task.
        accelerator: Lightning accelerator for these trainings (``auto``, ``cpu``, ``gpu``).
        seed: seed set before each training.
        enable_progress_bar: show Lightning's progress bar.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        max_epochs: int = 10,
        accelerator: str = "auto",
        seed: int = 0,
        enable_progress_bar: bool = True,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.max_epochs = max_epochs
        self.accelerator = accelerator
        self.seed = seed
        self.enable_progress_bar = enable_progress_bar
        self.limits = {
            "limit_train_batches": limit_train_batches,
            "limit_val_batches": limit_val_batches,
        }

    def settings(self) -> dict:
        """What of these settings changes the trained network (part of the cache key)."""
        return {"max_epochs": self.max_epochs, "seed": self.seed, **self.limits}

    def get(
        self,
        module: MultiTaskModule,
        datamodule: MultiTaskDataModule,
        identity: Mapping[str, str] | None = None,
    ) -> dict[str, SingleTaskResult]:
        """One trained single-task module per task of ``module``.

        Args:
            identity: per task, a description of the data, model and task settings
                that determine its network (the cache key hashes it with these
                training settings). Tasks without one are identified by name only.
        """
        identity = identity or {}
        results = {}
        for name in module.task_names:
            full_identity = json.dumps(
                {"task": name, "run": identity.get(name, ""), "training": self.settings()},
                sort_keys=True,
            )
            key = cache_key(full_identity)
            folder = self.cache_dir / key
            # Every task's network starts from the same weights, so that differences between
            # their representations come from the tasks, not from the initialisation.
            pl.seed_everything(self.seed, workers=True, verbose=False)
            single = module.single_task(name)
            if (folder / "model.pt").exists() and (folder / "metrics.json").exists():
                single.network.load_state_dict(torch.load(folder / "model.pt", map_location="cpu"))
                metrics = json.loads((folder / "metrics.json").read_text())
                log.info("Reusing the cached single-task network for %r (%s)", name, folder)
                results[name] = SingleTaskResult(single, metrics, True, key)
                continue

            log.info("Training the single-task network for %r (cache key %s)", name, key)
            metrics = self._train(single, datamodule, folder)
            self._store(folder, single, metrics, full_identity)
            results[name] = SingleTaskResult(single, metrics, False, key)
        return results

    def _train(
        self, single: MultiTaskModule, datamodule: MultiTaskDataModule, folder: Path
    ) -> dict[str, float]:
        datamodule.setup("fit")
        trainer = pl.Trainer(
            max_epochs=self.max_epochs,
            accelerator=self.accelerator,
            devices=1,
            logger=CSVLogger(self.cache_dir / "logs", name=folder.name),
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=self.enable_progress_bar,
            num_sanity_val_steps=0,
            **{k: v for k, v in self.limits.items() if v is not None},
        )
        trainer.fit(single, datamodule.train_dataloader(), datamodule.val_dataloader())
        return {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("val/")
        }

    def _store(self, folder: Path, single: MultiTaskModule, metrics: dict, identity: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for filename, write in (
            ("identity.json", lambda p: p.write_text(json.dumps(json.loads(identity), indent=2))),
            ("metrics.json", lambda p: p.write_text(json.dumps(metrics, indent=2))),
            ("model.pt", lambda p: torch.save(single.network.state_dict(), p)),
        ):
            temporary = folder / (filename + ".tmp")
            write(temporary)
            temporary.replace(folder / filename)
