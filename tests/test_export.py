"""`python -m telugu_s2s.export`: a run's Lightning checkpoint -> the framework-free export."""

from __future__ import annotations

import hydra
import torch
from omegaconf import OmegaConf

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.export import main

from .conftest import compose_train


def test_a_checkpoint_exports_with_the_run_config_and_loads_without_lightning(tmp_path, capsys):
    cfg = compose_train(["stage=asr", "model.codec_round_trip_prob=0"], tmp_path)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # as Hydra leaves it in a run folder
    torch.manual_seed(3)
    module = hydra.utils.instantiate(cfg.model)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "global_step": 1234, "epoch": 5}, ckpt)

    assert main([str(ckpt), str(tmp_path / "export"), "--dtype", "float16"]) == 0
    assert "exported step 1234" in capsys.readouterr().out
    exported = load_pretrained(tmp_path / "export")
    for name, weight in module.net.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], weight.half().float())

    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "x")]) == 1
    torch.save({"weights": 1}, run / "checkpoints" / "other.ckpt")
    assert main([str(run / "checkpoints" / "other.ckpt"), str(tmp_path / "x")]) == 1
    assert "not a Lightning checkpoint" in capsys.readouterr().err


def test_an_s2s_export_records_whose_codes_it_learned(tmp_path, random_codec_dir):
    """The codes fingerprint is set when fitting starts and kept in no checkpoint: the export
    takes it from the run's codec, so that serving can still refuse another codec."""
    cfg = compose_train(["stage=s2s", f"data.codec_dir={random_codec_dir}"], tmp_path)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    module = hydra.utils.instantiate(cfg.model)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "global_step": 7}, ckpt)
    assert main([str(ckpt), str(tmp_path / "export")]) == 0
    codec = load_pretrained(random_codec_dir)
    assert load_pretrained(tmp_path / "export").cfg.codec_fingerprint == codec.codes_fingerprint()
