"""Benchmark scripts that `make bench` runs: their training configs resolve for every stage."""

from __future__ import annotations

import sys

import pytest
from omegaconf import OmegaConf

from telugu_s2s.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import training  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


@pytest.mark.parametrize("stage", training.STAGES)
def test_training_benchmark_config_resolves_for_every_stage(stage, tmp_path):
    cfg = training.compose_for(f"{stage}_tiny", tmp_path / "data", 5, False, tmp_path / "out")
    # What measure() instantiates, resolved as Hydra would (interpolations and all).
    for section in ("trainer", "data", "model"):
        OmegaConf.to_container(cfg[section], resolve=True)
    assert cfg.trainer.max_steps == 5 and cfg.trainer.limit_val_batches == 0
    assert cfg.trainer.max_time is None and cfg.trainer.enable_checkpointing is False
    assert cfg.data.dataset_dir == str(tmp_path / "data") and not cfg.model.get("init_from")
    assert cfg.trainer.default_root_dir.startswith(str(tmp_path / "out"))
