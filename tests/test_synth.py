"""Synthesis: deterministic plans, held-out voices and dialogs, caching, the saved schema."""

import datasets
import numpy as np

from telugu_s2s.data.corpus import load_corpus
from telugu_s2s.data.datasets import decode_audio, load_split
from telugu_s2s.data.synth import SPLITS, build, plan_jobs, split_dialogs

from .conftest import tiny_synth_config


def _full_plan(tmp_path, seed=1234):
    return plan_jobs(load_corpus(), tiny_synth_config(tmp_path, dialogs_per_topic=None, seed=seed))


def test_plan_is_deterministic_and_seeded(tmp_path):
    a, b, c = _full_plan(tmp_path), _full_plan(tmp_path), _full_plan(tmp_path, seed=7)
    assert [j.cache_path for j in a] == [j.cache_path for j in b]
    assert [j.split for j in a] != [j.split for j in c]


def test_splits_hold_out_user_voices_and_dialogs(tmp_path):
    cfg = tiny_synth_config(tmp_path, dialogs_per_topic=None)
    dialogs = load_corpus()
    splits = split_dialogs(dialogs, cfg["seed"], cfg["val_fraction"], cfg["test_fraction"])
    for name in ("validation", "test"):
        assert sum(s == name for s in splits.values()) >= 0.1 * len(dialogs)
    held_out = set(cfg["held_out_user_voices"])
    assert len(held_out) == 2 and len(cfg["user_voices"]) >= 8
    users = {split: set() for split in SPLITS}
    for job in plan_jobs(dialogs, cfg):
        if job.role == "user":
            users[job.split].add(job.voice.name)
    assert users["train"] and not users["train"] & held_out
    assert users["validation"] <= held_out and users["test"] <= held_out
    assert len(users["train"]) == len(cfg["user_voices"]) - 2


def test_every_reply_in_all_four_voices(tmp_path):
    jobs = _full_plan(tmp_path)
    per_turn = {}
    for j in jobs:
        if j.role == "assistant" and j.style == "default":
            per_turn.setdefault((j.dialog_id, j.turn_index), set()).add(j.voice.name)
    assert all(v == {"arjun", "ravi", "priya", "lakshmi"} for v in per_turn.values())


def test_tiny_build_schema(tiny_dataset):
    dd = datasets.load_from_disk(str(tiny_dataset))
    assert set(dd) == set(SPLITS)
    train = dd["train"]
    for column in (
        "audio",
        "text",
        "speaker",
        "dialog_id",
        "turn_index",
        "topic",
        "sentiment",
        "emotion",
        "role",
        "word_starts_ms",
    ):
        assert column in train.column_names
    row = train[0]
    audio = decode_audio(row["audio"], 16000)
    assert audio.dtype == np.float32 and abs(audio.shape[0] / 16000 - row["duration"]) < 1e-3
    assert np.abs(audio).max() > 0.01
    assert row["word_starts_ms"] == sorted(row["word_starts_ms"])
    assert not set(dd["train"]["dialog_id"]) & set(dd["test"]["dialog_id"])


def test_rebuild_uses_the_cache(tmp_path, tiny_dataset):
    cfg = tiny_synth_config(tiny_dataset.parent)
    result = build(cfg)
    assert result["rendered_now"] == 0 and result["renders"] > 0


def test_missing_dataset_has_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="make data"):
        load_split(tmp_path / "nowhere", "train")
