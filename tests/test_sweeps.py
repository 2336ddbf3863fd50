"""Optuna sweeps (conf/hparams_search/*_optuna.yaml): every searched key exists in its stage's
config, and a 2-trial sweep on the debug trainer optimizes what train.py's main() returns."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from telugu_s2s.checkpoint import read_metadata
from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

from .conftest import compose_train

STAGES = ("codec", "speaker", "s2s")


@pytest.mark.parametrize("stage", STAGES)
def test_optuna_search_space_names_real_keys(stage, tmp_path):
    cfg = compose_train([f"hparams_search={stage}_optuna"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert cfg.stage_name == stage and cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert cfg.optimized_metric == cfg.callbacks.model_checkpoint.monitor
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, throw_on_missing=True) is not None, key


@pytest.mark.slow
def test_two_trial_optuna_sweep_minimizes_the_returned_metric(tiny_dataset, tmp_path):
    cmd = [
        sys.executable, str(REPO_ROOT / "train.py"), "-m", "hparams_search=speaker_optuna",
        "trainer=debug", "hydra.sweeper.n_trials=2", f"paths.dataset_dir={tiny_dataset}",
        f"paths.log_dir={tmp_path}", "data.num_workers=0", "test=false",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = tmp_path.glob("speaker/multiruns/*")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [read_metadata(job / "export") for job in sorted(sweep.glob("[0-9]*"))]
    assert len(trials) == 2
    losses = [t["metrics"]["val/loss"] for t in trials]
    assert results["best_value"] == pytest.approx(min(losses), rel=1e-6)
    space = yaml.safe_load((CONFIG_DIR / "hparams_search" / "speaker_optuna.yaml").read_text())
    assert set(results["best_params"]) == set(space["hydra"]["sweeper"]["params"])
    assert 3e-4 <= results["best_params"]["model.lr"] <= 1e-2


def test_slurm_launcher_asks_for_one_task_per_device():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    overrides = ["hydra/launcher=slurm", "experiment=s2s_base", "trainer=ddp", "trainer.devices=4",
                 "trainer.num_nodes=2"]  # fmt: skip
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
