"""`trainer=ddp` for every stage, as two CPU processes talking over gloo."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from telugu_s2s.checkpoint import read_metadata
from telugu_s2s.paths import REPO_ROOT


def logged_metrics(output: str) -> list[dict]:
    """The `metrics: {...}` line that train() logs, one per rank."""
    return [ast.literal_eval(m) for m in re.findall(r"metrics: (\{.*\})", output)]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["codec", "speaker", "s2s", "asr"])
def test_ddp_two_cpu_processes(stage, tiny_dataset, random_codec_dir, tmp_path):
    cmd = [
        sys.executable, str(REPO_ROOT / "train.py"), f"stage={stage}", "trainer=ddp",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32",
        "trainer.sync_batchnorm=false", "trainer.max_epochs=1", "trainer.max_steps=2",
        "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        f"test={stage == 'speaker'}", f"paths.dataset_dir={tiny_dataset}",
        f"paths.log_dir={tmp_path}", "data.num_workers=0",
    ]  # fmt: skip
    if stage == "s2s":  # tokens of an untrained codec, encoded lazily
        cmd += [f"data.codec_dir={random_codec_dir}", "data.precompute_tokens=false",
                "model.net.cfg.num_codebooks=4"]  # fmt: skip
    if stage == "asr":  # some batches through an untrained codec's round trip
        cmd += [f"model.codec_dir={random_codec_dir}", "model.codec_round_trip_prob=0.5"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output and "gloo" in output  # two ranks over gloo
    (export,) = tmp_path.glob(f"{stage}/runs/*/export")
    assert read_metadata(export)["stage"] == stage and read_metadata(export)["global_step"] > 0
    ranks = logged_metrics(output)
    assert len(ranks) == 2
    # validation is reduced over the ranks: every rank sees the same optimized metric
    metric = {"codec": "val/mel_distance", "speaker": "val/loss", "s2s": "val/loss",
              "asr": "val/cer"}[stage]  # fmt: skip
    assert ranks[0][metric] == pytest.approx(ranks[1][metric])
    if stage == "speaker":  # EER is scored on every rank's embeddings together
        assert ranks[0]["test/eer"] == pytest.approx(ranks[1]["test/eer"])
