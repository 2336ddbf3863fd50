"""Synthesis: deterministic plans, held-out voices and dialogs, caching, the saved schema."""

import datasets
import numpy as np

from telugu_s2s.data.datasets import decode_audio, load_split
from telugu_s2s.data.synth import SPLITS, build, load_dialogs, plan_jobs

from .conftest import tiny_synth_config


def _plan(tmp_path, seed=1234, dialogs=60):
    cfg = tiny_synth_config(tmp_path, seed=seed, dialogs_per_topic=None)
    cfg["generated"] = dict(cfg["generated"], dialogs=dialogs)
    return cfg, plan_jobs(load_dialogs(cfg), cfg)


def test_plan_is_deterministic_and_seeded(tmp_path):
    (_, a), (_, b), (_, c) = _plan(tmp_path), _plan(tmp_path), _plan(tmp_path, seed=7)
    assert [j.cache_path for j in a] == [j.cache_path for j in b]
    assert [j.voice for j in a] != [j.voice for j in c]


def test_held_out_user_voices_only_in_evaluation_splits(tmp_path):
    cfg, jobs = _plan(tmp_path)
    held_out = set(cfg["held_out_user_voices"])
    variants = {v["espeak"] for name, v in cfg["user_voices"].items() if name in held_out}
    assert len(held_out) >= 2 and len(cfg["user_voices"]) - len(held_out) >= 20
    users = {split: set() for split in SPLITS}
    trained_variants = set()
    for job in jobs:
        if job.role == "user":
            users[job.split].add(job.voice.name)
        if job.split == "train":
            trained_variants.add(job.voice.espeak)
    assert users["train"] and not users["train"] & held_out
    assert not trained_variants & variants  # the held-out espeak variants are never trained on
    for split in ("validation", "test", "natural"):
        assert users[split] and users[split] <= held_out


def test_generated_dialogs_are_voiced_once_with_varied_users(tmp_path):
    _, jobs = _plan(tmp_path)
    per_dialog = {}
    for j in jobs:
        if j.split != "natural":
            per_dialog.setdefault((j.dialog_id, j.role), set()).add(j.voice)
    assert all(len(v) >= 1 for v in per_dialog.values())
    assistants = {v.name for (_, role), vs in per_dialog.items() if role == "assistant" for v in vs}
    assert assistants == {"arjun", "ravi", "priya", "lakshmi"}
    formants = {v.formant for (_, role), vs in per_dialog.items() if role == "user" for v in vs}
    assert len(formants) > 10 and all(0.9 <= f <= 1.1 for f in formants)


def test_natural_replies_in_all_four_voices(tmp_path):
    _, jobs = _plan(tmp_path, dialogs=0)
    per_turn = {}
    for j in jobs:
        if j.role == "assistant" and j.style == "default":
            per_turn.setdefault((j.dialog_id, j.turn_index), set()).add(j.voice.name)
    assert len(per_turn) > 500
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
    replies = [r for r in dd["test"] if r["role"] == "assistant"]
    assert replies and all(r["text"] in r["valid_replies"] for r in replies)
    assert (tiny_dataset / "dialogs.jsonl").exists()


def test_rebuild_uses_the_cache(tmp_path, tiny_dataset):
    cfg = tiny_synth_config(tiny_dataset.parent)
    result = build(cfg)
    assert result["rendered_now"] == 0 and result["renders"] > 0


def test_missing_dataset_has_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="make data"):
        load_split(tmp_path / "nowhere", "train")
