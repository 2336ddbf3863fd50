"""The S2S model's ear: streaming equals offline, greedy CTC decoding, and its CTC targets."""

from __future__ import annotations

import torch

from telugu_s2s.data.datasets import _RowsDataset, load_split
from telugu_s2s.data.text import BLANK, PAD, SPACE, TextTokenizer, ctc_collapse
from telugu_s2s.data.token_variants import encode_variants, load_variants
from telugu_s2s.data.tokens import TokenCache
from telugu_s2s.data.utterance_tasks import UtteranceTaskConfig, UtteranceTasks
from telugu_s2s.evaluation.cer import cer
from telugu_s2s.lit.s2s_module import user_transcripts
from telugu_s2s.models.code_hearing import CodeHearing, CodeHearingConfig

CFG = CodeHearingConfig(num_codebooks=3, codebook_size=16, embed_dim=12, hidden=10, layers=2)


def make() -> CodeHearing:
    torch.manual_seed(0)
    return CodeHearing(CFG).eval()


def test_chunked_stream_equals_offline_and_reset_starts_a_fresh_stream() -> None:
    model = make()
    codes = torch.randint(0, 16, (2, 3, 11))
    with torch.no_grad():
        whole = model(codes)
        pieces = []
        with model.streaming(2):
            for start, stop in ((0, 1), (1, 5), (5, 6), (6, 11)):
                pieces.append(model(codes[..., start:stop]))
            model.reset_streaming(torch.tensor([False, True]))
            fresh = model(codes[..., :4])
    R = CFG.sub_frames
    torch.testing.assert_close(torch.cat([p.features for p in pieces], 1), whole.features)
    torch.testing.assert_close(torch.cat([p.log_probs for p in pieces], 1), whole.log_probs)
    assert whole.features.shape == (2, 11, CFG.feature_dim)
    assert whole.log_probs.shape == (2, 11 * R, CFG.vocab_size)
    # Item 1 starts over: as offline from its first frame; item 0 goes on from frame 11.
    torch.testing.assert_close(fresh.log_probs[1], whole.log_probs[1, : 4 * R])
    assert not torch.allclose(fresh.log_probs[0], whole.log_probs[0, : 4 * R])


def test_the_ear_learns_to_transcribe_a_fixed_batch() -> None:
    """CTC over a few steps drives its loss down and its greedy decode towards the text."""
    torch.manual_seed(0)
    model = CodeHearing(CodeHearingConfig(num_codebooks=3, codebook_size=16, embed_dim=16,
                                          hidden=32, layers=1, dropout=0.0))  # fmt: skip
    codes = torch.randint(0, 16, (2, 3, 8))
    tokenizer = TextTokenizer()
    texts = ["నమస్తే", "ఏమి"]
    targets = [torch.tensor(tokenizer.encode(t)) for t in texts]
    frames = torch.tensor([8, 7])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(800):
        loss = model.ctc_loss(model(codes).log_probs, frames, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        heard = model.decode(model(codes).log_probs, frames)
    # Random codes carry no timing: some characters stay spread over steps, below the blank.
    assert sum(cer(h, t) for h, t in zip(heard, texts, strict=True)) / 2 < 0.4


def test_ctc_collapse_merges_repeats_across_chunks_and_drops_blanks() -> None:
    assert ctc_collapse([5, 5, BLANK, 5, 7, 7]) == [5, 5, 7]
    assert ctc_collapse([5, 8], previous=5) == [8]  # 5 continues the last chunk's 5
    assert ctc_collapse([5, 8], previous=BLANK) == [5, 8]


def test_user_transcripts_are_the_spoken_characters_within_each_item() -> None:
    stream = torch.tensor([
        [BLANK, 10, 11, BLANK, SPACE, 12, PAD],
        [13, BLANK, 14, 15, 16, BLANK, BLANK],
    ])  # fmt: skip
    out = user_transcripts(stream, torch.tensor([6, 3]))
    assert out[0].tolist() == [10, 11, SPACE, 12]
    assert out[1].tolist() == [13, 14]


def test_voice_variants_are_cached_and_heard_in_training_only(tiny_dataset, random_codec_dir):
    cache = TokenCache(tiny_dataset, random_codec_dir)
    rows = _RowsDataset(load_split(tiny_dataset, "train"), 16000, seed=0, train=False)
    path = encode_variants(cache, "train", rows, count=6, seed=0, batch_size=4)
    variants = load_variants(cache, "train", rows)
    assert len(variants) == 6
    for row, (codes, speed) in variants.items():
        assert 0.79 <= speed <= 1.26  # a new voice: pitch, formants and tempo moved together
        clean_frames = cache.encode([rows.audio(row)])[0].shape[1]
        assert abs(codes.shape[1] - clean_frames / speed) <= 2

    cfg = UtteranceTaskConfig(variant_prob=1.0, listen_assistant_prob=1.0)
    tasks = UtteranceTasks(rows.rows, 16000, cfg, seed=0, train=True)
    tasks.codes, tasks.silence = cache.load("train", tasks, precompute=False), cache.silence()[:4]
    tasks.variants = variants
    row = next(iter(variants))
    item, heard = tasks[row], variants[row][0][:4].long()
    n, user = heard.shape[1], item["user_codes"]
    assert any(torch.equal(user[:, lead : lead + n], heard) for lead in range(1, 5))
    spoken = TextTokenizer().collapse_frames(item["user_text"]).strip()
    assert spoken == " ".join(rows.rows[row]["text"].split())  # the same words, re-timed
    evaluation = UtteranceTasks(rows.rows, 16000, cfg, seed=0, train=False)
    evaluation.codes, evaluation.silence, evaluation.variants = tasks.codes, tasks.silence, variants
    own = "user" if evaluation.task_of(row, None) == "listen" else "assistant"
    clean = tasks.codes[row][:4].long()  # evaluation items hear the clean row, lead 2
    assert torch.equal(evaluation[row][f"{own}_codes"][:, 2 : 2 + clean.shape[1]], clean)

    saved = torch.load(path, weights_only=True)  # another dataset build: not used
    torch.save({**saved, "dataset_fingerprint": "other"}, path)
    assert load_variants(cache, "train", rows) == {}
    path.unlink()
