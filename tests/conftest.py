"""Shared fixtures: a tiny dataset built by the real synthesis pipeline, and composed
training configs forced onto a short CPU run (lightning-hydra-template style)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from telugu_s2s.data.voices import load_synth_config
from telugu_s2s.paths import CORPUS_DIR

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)


def tiny_synth_config(root: Path, **overrides) -> dict:
    cfg = load_synth_config()
    cfg.pop("hydra", None)
    cfg.pop("defaults", None)
    cfg.update(
        corpus_dir=str(CORPUS_DIR),
        cache_dir=str(root / "cache"),
        output_dir=str(root / "dataset"),
        # 30 generated dialogs: 1 train, 1 validation, 1 test dialog per topic; and one
        # hand-written dialog per topic in the natural split.
        generated={"dialogs": 30, "seed": 2026, "val_fraction": 0.05, "test_fraction": 0.05},
        dialogs_per_topic=1,
        render_style_variants=True,
        num_workers=2,
    )
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """40 dialogs voiced end to end (about 15 s on 2 cores)."""
    from telugu_s2s.data.synth import build

    root = tmp_path_factory.mktemp("tiny_data")
    cfg = tiny_synth_config(root)
    build(cfg)
    return Path(cfg["output_dir"])


@pytest.fixture(scope="session")
def random_codec_dir(tmp_path_factory) -> Path:
    """An untrained codec export: the S2S plumbing needs a codec, not a good one."""
    from telugu_s2s.checkpoint import save_pretrained
    from telugu_s2s.models.codec import CodecConfig, CodecModel

    torch.manual_seed(0)
    return save_pretrained(CodecModel(CodecConfig()), tmp_path_factory.mktemp("random_codec"))


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """The training config as `python train.py <overrides>` would see it, on a tiny CPU run."""
    from telugu_s2s.train import compose_train_config

    cfg = compose_train_config(overrides, output_dir)
    with open_dict(cfg):
        cfg.data.num_workers = 0
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.devices = 1
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    return cfg
