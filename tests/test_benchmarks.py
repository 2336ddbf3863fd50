"""Benchmark scripts that `make bench` runs: their training configs compose for every stage."""

from __future__ import annotations

import sys

import pytest
from hydra import compose, initialize_config_dir

from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import training  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


@pytest.mark.parametrize("stage", training.STAGES)
def test_training_benchmark_overrides_compose_for_every_stage(stage, tmp_path):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=training.overrides_for(f"{stage}_tiny", tmp_path, 5, False)
        )
    assert cfg.trainer.max_steps == 5 and cfg.trainer.limit_val_batches == 0
    assert cfg.trainer.max_time is None and cfg.trainer.enable_checkpointing is False
    assert cfg.paths.dataset_dir == str(tmp_path)
