"""The shared datamodule's three views over one dataset."""

import numpy as np
import pytest
import torch

from telugu_s2s.data.datamodules import TeluguDataModule
from telugu_s2s.data.text import BLANK, PAD, TextTokenizer, align_to_frames
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig
from telugu_s2s.data.voices import ASSISTANT_VOICES

FRAME = 1280


def test_tokenizer_round_trip():
    tok = TextTokenizer()
    text = "నమస్తే, మీ పేరు ఏమిటి?"
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="not in the Telugu vocabulary"):
        tok.encode("hello", strict=True)


def test_alignment_follows_word_timings():
    text = "ఒకటి రెండు మూడు"
    frames = align_to_frames(text, [0, 800, 1600], [0, 5, 11], num_frames=40, frame_rate=12.5)
    tok = TextTokenizer()
    assert tok.collapse_frames(frames).strip() == text
    assert frames[10] != BLANK and frames[9] == BLANK  # "రెండు" starts at 800 ms = frame 10
    assert frames[20] != BLANK  # "మూడు" starts at frame 20
    cut = align_to_frames(text, [0, 800, 1600], [0, 5, 11], num_frames=12, frame_rate=12.5)
    assert tok.collapse_frames(cut).startswith("ఒకటి ర") and "మూడు" not in tok.collapse_frames(cut)


def test_codec_crops(tiny_dataset):
    dm = TeluguDataModule("codec", str(tiny_dataset), batch_size=4, crop_seconds=0.5)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (4, 1, 8000)
    val_a = next(iter(dm.val_dataloader()))["audio"]
    val_b = next(iter(dm.val_dataloader()))["audio"]
    assert torch.equal(val_a, val_b)  # evaluation crops are deterministic


def test_speaker_labels_and_augmentation(tiny_dataset):
    dm = TeluguDataModule("speaker", str(tiny_dataset), batch_size=8, crop_seconds=1.0)
    dm.setup()
    assert dm.speaker_names[:4] == list(ASSISTANT_VOICES)
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (8, 1, 16000)
    assert batch["speaker_id"].max() < len(dm.speaker_names)
    ds = dm.datasets["train"]
    i = next(k for k, s in enumerate(ds.labels) if s == 0)
    assert dm.speaker_names[ds.labels[i]] == ds.meta["speaker"][ds.keep[i]]


def test_s2s_timelines_two_channels_with_aligned_text(tiny_dataset):
    dm = TeluguDataModule("s2s", str(tiny_dataset), batch_size=2, timeline={"max_seconds": 25.0})
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    frames = int(batch["num_frames"][0])
    user = batch["user_audio"][0, 0, : frames * FRAME].reshape(frames, FRAME).abs().amax(1)  # (F,)
    asst = batch["assistant_audio"][0, 0, : frames * FRAME].reshape(frames, FRAME).abs().amax(1)
    text = batch["assistant_text"][0, :frames]
    assert batch["turn_mask"][0].sum() >= 1
    mask = batch["turn_mask"][0]
    for (_, ue), (as_, ae) in zip(
        batch["user_span"][0][mask], batch["assistant_span"][0][mask], strict=True
    ):
        assert ue <= as_  # the reply comes after the user's turn (no barge-in in evaluation)
        assert asst[as_ + 1 : ae - 1].max() > 0.01 and user[as_ + 1 : ae - 1].max() == 0
        assert (text[as_:ae] != BLANK).any()
    # text appears only where the assistant is speaking, or just after (the stream may lag)
    spoken = torch.zeros(frames, dtype=torch.bool)
    for as_, ae in batch["assistant_span"][0][batch["turn_mask"][0]]:
        spoken[as_ : ae + 12] = True
    assert ((text != BLANK) & (text != PAD) & ~spoken).sum() == 0


def test_barge_in_cuts_the_reply(tiny_dataset):
    from telugu_s2s.data.datasets import load_split

    rows = load_split(tiny_dataset, "train")
    ds = DialogTimelines(
        rows, 16000, TimelineConfig(max_seconds=40.0, barge_in_prob=1.0), seed=3, train=True
    )
    found = False
    for i in range(len(ds)):
        item = ds[i]
        turns = item["turns"]
        for prev, nxt in zip(turns, turns[1:], strict=False):
            if prev["interrupted"]:
                found = True
                (a_start, a_end), (u_start, _) = prev["assistant_span"], nxt["user_span"]
                assert a_start < u_start < a_end  # the user starts while the assistant talks
                assert a_end - u_start <= ds.cfg.stop_delay_frames + 1  # and it stops soon after
                tail = item["assistant_audio"][0, (a_end + 1) * FRAME : (a_end + 2) * FRAME]
                assert tail.abs().max() < 1e-6  # silent after the cut
        if found:
            break
    assert found


def test_training_windows_start_at_the_opening_as_often_as_asked(tiny_dataset):
    from telugu_s2s.data.datasets import load_split

    rows = load_split(tiny_dataset, "train")

    def opening_share(probability: float) -> float:
        cfg = TimelineConfig(max_seconds=40.0, start_at_opening=probability)
        ds = DialogTimelines(rows, 16000, cfg, seed=5, train=True)
        firsts = [ds[i]["turns"][0]["turn_index"] for i in range(min(len(ds), 24))]
        return float(np.mean([f == 0 for f in firsts]))

    assert opening_share(1.0) == 1.0
    assert opening_share(0.0) < 0.5  # uniform over 7-9 turns


def test_eval_items_are_deterministic(tiny_dataset):
    from telugu_s2s.data.datasets import load_split

    ds = DialogTimelines(load_split(tiny_dataset, "test"), 16000, TimelineConfig(), train=False)
    a, b = ds[0], ds[0]
    assert torch.equal(a["user_audio"], b["user_audio"]) and a["speaker_id"] == b["speaker_id"]
    assert np.isfinite(a["assistant_audio"].numpy()).all()


def test_token_timelines_place_each_utterance_on_frames(tiny_dataset, random_codec_dir):
    from telugu_s2s.data.tokens import TokenCache

    dm = TeluguDataModule(
        "s2s",
        str(tiny_dataset),
        batch_size=1,
        codec_dir=str(random_codec_dir),
        precompute_tokens=False,
    )
    dm.setup()
    ds = dm.datasets["validation"]
    item = ds[0]
    codes, silence = item["user_codes"], ds.silence  # (K, F), (K,)
    assert codes.shape == (8, item["num_frames"])
    (start, _), row = (
        item["turns"][0]["user_span"],
        ds.user_rows[ds.items[0]][item["turns"][0]["turn_index"]],
    )
    expected = ds.codes[row].long()  # the utterance encoded on its own
    n = expected.shape[1]
    assert torch.equal(codes[:, start : start + n], expected)
    assert (codes[:, :start] == silence[:, None]).all()  # silence before the first turn
    # the cached codes are what the codec gives for the utterance's audio, which a token
    # timeline never decodes: it places the row by its duration, the audio's exact length
    cache = TokenCache(tiny_dataset, random_codec_dir)
    audio = ds.audio(row)
    assert torch.equal(cache.encode([audio])[0].long(), expected)
    assert ds.silent(row).shape == audio.shape and "user_audio" not in item
    # A model on the first 4 codebooks gets the same timeline, cut to those codebooks.
    dm4 = TeluguDataModule("s2s", str(tiny_dataset), batch_size=1, num_codebooks=4,
                           codec_dir=str(random_codec_dir), precompute_tokens=False)  # fmt: skip
    dm4.setup()
    item4 = dm4.datasets["validation"][0]
    assert dm4.datasets["validation"].silence.shape == (4,)
    assert torch.equal(item4["user_codes"], codes[:4])
    assert torch.equal(item4["assistant_codes"], item["assistant_codes"][:4])


def test_token_cache_resumes_an_interrupted_encode(tiny_dataset, random_codec_dir, tmp_path):
    import shutil

    from telugu_s2s.data import tokens as tokens_mod
    from telugu_s2s.data.datasets import _RowsDataset, load_split

    dataset = tmp_path / "dataset"  # a private copy: the cache lives beside the dataset
    shutil.copytree(tiny_dataset, dataset)
    rows = _RowsDataset(load_split(dataset, "validation"), 16000, seed=0, train=False)
    cache = tokens_mod.TokenCache(dataset, random_codec_dir)
    calls = []
    encode = cache.encode

    def encode_or_crash(clips):
        calls.append(len(clips))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed mid-run, after two batches and one partial save
        return encode(clips)

    cache.encode = encode_or_crash
    split = tokens_mod.SplitTokens(cache, "validation", rows)
    with pytest.raises(KeyboardInterrupt):
        split.encode_all(batch_size=2, save_every=1)
    assert split.partial_path.exists() and not split.path.exists()

    cache.encode = encode
    resumed = tokens_mod.SplitTokens(cache, "validation", rows)
    assert len(resumed.codes) == 4  # the two saved batches are not encoded again
    resumed.encode_all(batch_size=2, save_every=1)
    assert resumed.path.exists() and not resumed.partial_path.exists()
    # the CLI finds the finished split and gives the same codes as a fresh encode
    tokens_mod.main(["--dataset-dir", str(dataset), "--codec-dir", str(random_codec_dir),
                     "--splits", "validation"])  # fmt: skip
    final = tokens_mod.SplitTokens(cache, "validation", rows)
    assert len(final.codes) == len(rows.rows)
    for i in (0, len(rows.rows) - 1):
        assert torch.equal(final.codes[i], encode([rows.audio(i)])[0])
