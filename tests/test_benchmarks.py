"""Benchmark scripts that `make bench` runs: their training configs resolve for every stage."""

from __future__ import annotations

import sys
from pathlib import Path

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


def test_learning_curves_join_a_warm_started_run_after_a_resumed_one(tmp_path):
    import json

    import curves

    def run(name: str, rows: list[tuple[int, float | str]]) -> Path:
        folder = tmp_path / name / "csv" / "version_0"
        folder.mkdir(parents=True)
        lines = ["step,train/loss,val/reply_ce"] + [f"{s},0.5,{v}" for s, v in rows]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
        return tmp_path / name

    first = run("first", [(199, 2.0), (205, ""), (399, 1.5)])  # "" : a training-only row
    warm = run("warm", [(199, 1.2), (399, 1.0)])  # init_from: its steps start at 0 again
    resumed = run("resumed", [(599, 0.9)])  # ckpt_path: it goes on counting
    curves.main(["text", str(first), str(warm), str(resumed), "--out", str(tmp_path / "out")])
    points = json.loads((tmp_path / "out" / "text.json").read_text())["curves"]["val/reply_ce"]
    steps = [(p["step"], p["value"]) for p in points]
    assert steps == [(199, 2.0), (399, 1.5), (599, 1.2), (799, 1.0), (999, 0.9)]
    assert (tmp_path / "out" / "text.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        curves.main(["text", str(first), "--metrics", "val/topic_acc", "--out", str(tmp_path)])


def test_turn_taking_measures_when_the_model_starts_speaking() -> None:
    """The fake engine replies `reply_after_frames` quiet frames after speech: answered, with
    that delay; told never to reply, it is counted as not answered."""
    import numpy as np
    import turn_taking

    from tests.serving.fakes import FakeEngine

    speech = (0.1 * np.sin(np.arange(1280 * 10) * 0.2)).astype(np.float32)  # 10 frames
    result = turn_taking.answer(FakeEngine(reply_after_frames=3, reply_frames=5), speech, 2.0)
    assert result["answered"] and result["speaking_frames_after"] > 0
    assert 2 * 80 <= result["delay_ms"] <= 4 * 80
    silent = turn_taking.answer(FakeEngine(reply_after_frames=1000), speech, 2.0)
    assert not silent["answered"] and silent["delay_ms"] is None
