"""`python train.py stage=...`: every stage trains a few batches and writes a Lightning
checkpoint plus the framework-free export; sweeps and loggers work."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from telugu_s2s.checkpoint import load_pretrained, read_metadata
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.train import optimized_value, train

from .conftest import compose_train


@pytest.mark.parametrize("stage", ["codec", "speaker", "s2s", "asr"])
def test_debug_run_writes_checkpoint_and_export(stage, tiny_dataset, random_codec_dir, tmp_path):
    overrides = [f"stage={stage}", "trainer=debug", f"paths.dataset_dir={tiny_dataset}"]
    if stage == "s2s":  # tokens from an untrained codec, encoded lazily; the committed speaker bank
        overrides += [f"data.codec_dir={random_codec_dir}", "data.precompute_tokens=false",
                      "model.net.cfg.num_codebooks=4", "callbacks.export_pretrained.dtype=float16"]  # fmt: skip
    if stage == "asr":  # half the batches through an (untrained) codec's round trip
        overrides += [f"model.codec_dir={random_codec_dir}", "model.codec_round_trip_prob=0.5"]
    cfg = compose_train(overrides, tmp_path)
    metrics = train(cfg)
    assert cfg.stage_name == stage
    assert torch.isfinite(torch.tensor(optimized_value(cfg, metrics)))
    assert list((tmp_path / "checkpoints").glob("*.ckpt")), "no Lightning checkpoint"
    export = Path(cfg.export_dir)
    meta = read_metadata(export)
    assert meta["stage"] == stage and meta["global_step"] > 0
    model = load_pretrained(export)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert (tmp_path / "csv").exists()  # the CSV logger wrote metrics
    if stage == "s2s":  # the first 4 of the codec's 8 codebooks, weights stored as float16
        from safetensors import safe_open

        assert model.cfg.num_codebooks == 4 and meta["stored_dtype"] == "float16"
        with safe_open(str(export / "model.safetensors"), "pt") as f:
            assert f.get_tensor("user_embedding.weight").dtype == torch.float16
        assert next(model.parameters()).dtype == torch.float32  # loads back at full precision
    if stage == "speaker":
        from telugu_s2s.speakers import SpeakerBank

        assert SpeakerBank.load(export).names == ["arjun", "ravi", "priya", "lakshmi"]
        assert list(tmp_path.rglob("speaker_projection.png"))


def test_experiment_configs_compose(tmp_path):
    for name, stage in [("codec_tiny", "codec"), ("codec_base", "codec"), ("speaker_tiny", "speaker"),
                        ("speaker_base", "speaker"), ("s2s_tiny", "s2s"), ("s2s_base", "s2s"),
                        ("asr_tiny", "asr")]:  # fmt: skip
        cfg = compose_train([f"experiment={name}"], tmp_path)
        assert cfg.stage_name == stage and cfg.data.task == stage and stage in cfg.model._target_


def test_wandb_logger_runs_offline(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [
        "stage=speaker",
        "trainer=debug",
        "logger=wandb",
        "test=false",
        f"paths.dataset_dir={tiny_dataset}",
    ]
    cfg = compose_train(overrides, tmp_path)
    train(cfg)
    assert list((tmp_path / "wandb").glob("offline-run-*")), "wandb wrote no offline run"


def test_multirun_sweeps_two_jobs(tiny_dataset, tmp_path):
    """The documented sweep: `python train.py -m stage=codec model.lr=1e-3,3e-4 trainer=debug`."""
    cmd = [
        sys.executable, str(REPO_ROOT / "train.py"), "-m", "stage=codec", "model.lr=1e-3,3e-4", "trainer=debug",
        f"paths.dataset_dir={tiny_dataset}", f"paths.log_dir={tmp_path}", "data.num_workers=0", "test=false",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent.parent for p in tmp_path.glob("codec/multiruns/*/*/export/config.json"))
    assert len(jobs) == 2
    assert all(read_metadata(j / "export")["stage"] == "codec" for j in jobs)
    lrs = {
        line
        for j in jobs
        for line in (j / ".hydra" / "overrides.yaml").read_text().splitlines()
        if "model.lr" in line
    }
    assert lrs == {"- model.lr=0.001", "- model.lr=0.0003"}


def test_a_resume_whose_checkpoint_already_spent_max_time_fails_before_training(tmp_path):
    from omegaconf import OmegaConf

    from telugu_s2s.train import check_resume_time

    checkpoint = tmp_path / "last.ckpt"
    torch.save({"callbacks": {"Timer": {"time_elapsed": {"train": 2 * 3600.0}}}}, checkpoint)

    def cfg(max_time):
        return OmegaConf.create({"ckpt_path": str(checkpoint), "trainer": {"max_time": max_time}})

    with pytest.raises(ValueError, match="already trained for 2.00 h"):
        check_resume_time(cfg("00:01:25:00"))
    with pytest.raises(ValueError, match="raise trainer.max_time"):
        check_resume_time(cfg({"hours": 1, "minutes": 59}))
    check_resume_time(cfg("00:03:00:00"))  # room left: no error
    check_resume_time(cfg(None))
