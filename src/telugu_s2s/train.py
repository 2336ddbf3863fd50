"""Training entry point: `python train.py stage=codec|speaker|s2s` (see conf/train.yaml).

`train(cfg)` builds everything with `hydra.utils.instantiate` and returns the metrics,
so that sweeps can optimize `optimized_metric`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

log = logging.getLogger(__name__)

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def _instantiate_all(section: DictConfig | None) -> list[Any]:
    """Every `_target_` entry of a dict-of-configs group (callbacks, loggers)."""
    if not section:
        return []
    return [
        hydra.utils.instantiate(c)
        for c in section.values()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


def compose_train_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config `python train.py <overrides>` runs with (its Hydra runtime config set),
    writing under `output_dir`: for benchmarks and tests that run a stage in-process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
        HydraConfig().set_config(cfg)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    return cfg


def set_threads(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):  # on a shared CPU one thread beats two that wait for each other
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.get("matmul_precision"):  # "high": TF32 matrix products on a GPU's tensor cores
        torch.set_float32_matmul_precision(cfg.matmul_precision)


def _seconds(max_time) -> float | None:
    """`trainer.max_time` ("DD:HH:MM:SS" or a dict of timedelta fields) in seconds."""
    if not max_time:
        return None
    if isinstance(max_time, str):
        days, hours, minutes, seconds = (int(part) for part in max_time.split(":"))
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    from datetime import timedelta

    return timedelta(**dict(max_time)).total_seconds()


def check_resume_time(cfg: DictConfig) -> None:
    """Lightning's Timer counts the time of the run a checkpoint resumes: a `max_time`
    below it would stop the resumed run before its first step, silently."""
    if not cfg.get("ckpt_path"):
        return
    limit = _seconds(cfg.trainer.get("max_time"))
    if limit is None:
        return
    # Memory-mapped: only the callbacks' state is read here; the fit loads the tensors.
    state = torch.load(cfg.ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    timer = next((v for k, v in state.get("callbacks", {}).items() if k.startswith("Timer")), None)
    spent = float(timer["time_elapsed"]["train"]) if timer else 0.0
    if spent >= limit:
        raise ValueError(
            f"{cfg.ckpt_path} has already trained for {spent / 3600:.2f} h, and the resumed "
            f"run counts that time too: raise trainer.max_time above it (now {limit / 3600:.2f} h)"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and test) one stage; returns every logged metric as a float."""
    check_resume_time(cfg)
    L.seed_everything(cfg.seed, workers=True)
    set_threads(cfg)
    log.info("stage=%s: instantiating datamodule <%s>", cfg.stage_name, cfg.data._target_)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    hparams = {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }
    for logger in loggers:
        logger.log_hyperparams(hparams)

    metrics: dict[str, float] = {}
    if cfg.get("train"):
        # Our own checkpoints: the datamodule's hyperparameters in them hold DictConfigs.
        trainer.fit(
            model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=False
        )
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if cfg.get("test"):
        best = (
            getattr(trainer.checkpoint_callback, "best_model_path", "") if cfg.get("train") else ""
        )
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    log.info("metrics: %s", {k: round(v, 5) for k, v in metrics.items()})
    return metrics


def optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} was not logged; logged: {sorted(metrics)}")
    value = metrics[name]
    return value if math.isfinite(value) else float("inf")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    return optimized_value(cfg, train(cfg))


if __name__ == "__main__":
    main()
