"""Shared helpers: compose the real Hydra configs with settings small enough for a CPU test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[1] / "conf"

# Few epochs, few images, no W&B, no progress bars: the real pipeline, only smaller.
TINY = [
    "logger=csv",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "affinity.num_images=16",
]


def compose_config(overrides: list[str], tmp_path: Path):
    """The composed configuration, writing outputs and caches under ``tmp_path``."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"output_dir={tmp_path / 'out'}",
                f"cache_dir={tmp_path / 'cache'}",
                *TINY,
                *overrides,
            ],
        )


@pytest.fixture
def tiny_config(tmp_path):
    def make(*overrides: str):
        return compose_config(list(overrides), tmp_path)

    return make
