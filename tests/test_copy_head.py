"""The copy head (models/copy_head.py): what it may copy, its mixing, and that a stream
chunk by chunk gives what the whole sequence gives; the ear's greedy emissions it copies."""

from __future__ import annotations

import torch

from telugu_s2s.data.text import BLANK, PAD, ctc_transcript
from telugu_s2s.models.code_hearing import CodeHearing, CodeHearingConfig
from telugu_s2s.models.copy_head import (
    CopyHead,
    CopyHeadConfig,
    CopyMemory,
    copy_loss,
    spread_frames,
    text_spans,
    turn_characters,
)
from telugu_s2s.paths import CHECKPOINT_DIR

V = 140


def _inputs(seed: int = 0, frames: int = 10):
    g = torch.Generator().manual_seed(seed)
    user = torch.full((2, frames), BLANK)
    user[0, 2:5] = torch.tensor([50, 51, 52])  # the first item's user says three characters
    hidden = torch.randn(2, frames, 32, generator=g)
    prev = torch.randint(4, V + 1, (2, frames), generator=g)  # V is TEXT_START
    return hidden, prev, user


def _head(window: int, sub_frames: int = 1) -> CopyHead:
    torch.manual_seed(0)
    head = CopyHead(CopyHeadConfig(dim=32, vocab_size=V, window=window, sub_frames=sub_frames))
    torch.nn.init.constant_(head.gate.bias, 1.0)  # open enough to see the copy in the output
    return head


def test_it_copies_only_what_the_user_said_within_its_window():
    head = _head(window=4)
    hidden, prev, user = _inputs()
    keys, _ = head.keys(hidden, user, torch.full((2,), PAD))
    copy, gate = head.copy_distribution(hidden, prev, keys, user, torch.arange(10))
    support = {int(i) for i in torch.nonzero(copy[0].sum(0))[:, 0]}
    assert support == {50, 51, 52}
    totals = copy[0].sum(-1)  # frames 2..7 see a character within 4 frames; others nothing
    torch.testing.assert_close(totals, torch.tensor([0.0, 0, 1, 1, 1, 1, 1, 1, 0, 0]))
    assert gate[1].abs().sum() == 0 and gate[0, 2] > 0  # the second item's user said nothing


def test_mixing_gives_log_probabilities_and_leaves_the_text_head_alone_with_nothing_to_copy():
    head = _head(window=4)
    hidden, prev, user = _inputs()
    logits = torch.randn(2, 10, V)
    mixed = head(logits, hidden, prev, user)
    torch.testing.assert_close(mixed.exp().sum(-1), torch.ones(2, 10))
    torch.testing.assert_close(mixed[1], logits[1].log_softmax(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(mixed[0, 3], logits[0, 3].log_softmax(-1))


def test_a_key_reads_the_character_said_before_it_across_silence():
    head = _head(window=10)
    hidden, _, user = _inputs()
    user[0, 6] = 53  # after two BLANK frames: its previous character is 52
    keys, last = head.keys(hidden, user, torch.full((2,), PAD))
    expected = head.key(
        torch.cat([hidden[0, 6], head.embedding.weight[52], head.embedding.weight[53]])
    )
    torch.testing.assert_close(keys[0, 6], expected)
    assert last.tolist() == [53, PAD]  # and the stream's last character is 53; none for item 1


def test_a_stream_in_chunks_equals_the_whole_sequence_and_a_reset_starts_afresh():
    R, frames = 2, 14
    head = _head(window=5, sub_frames=R)
    hidden, prev, _ = _inputs(1, frames)
    g = torch.Generator().manual_seed(2)
    source = torch.randint(4, V, (2, frames * R), generator=g)
    source[torch.rand(2, frames * R, generator=g) < 0.5] = BLANK  # said on about half
    logits = torch.randn(2, frames, V, generator=g)
    with torch.no_grad():
        whole = head(logits, hidden, prev, source)
        chunks = []
        with head.streaming(2):
            for a, b in ((0, 1), (1, 4), (4, 5), (5, 11), (11, 14)):
                chunks.append(
                    head(logits[:, a:b], hidden[:, a:b], prev[:, a:b], source[:, a * R : b * R])
                )
            torch.testing.assert_close(torch.cat(chunks, 1), whole, atol=1e-5, rtol=0)
            head.reset_streaming(torch.tensor([True, False]))  # item 0 starts a new stream
            fresh = head(logits[:, :3], hidden[:, :3], prev[:, :3], source[:, : 3 * R])
    with torch.no_grad():
        alone = head(logits[:1, :3], hidden[:1, :3], prev[:1, :3], source[:1, : 3 * R])
    torch.testing.assert_close(fresh[:1], alone, atol=1e-5, rtol=0)


def test_the_ears_emissions_collapse_repeats_across_chunks():
    torch.manual_seed(0)
    ear = CodeHearing(CodeHearingConfig(codebook_size=16, embed_dim=8, hidden=8, layers=1)).eval()
    ids = torch.tensor([[7, 7, BLANK, 7, 9, 9, 9, BLANK, BLANK, 12, 12, 12]])
    log_probs = torch.nn.functional.one_hot(ids, V).float().log()  # (1, 12, V)
    whole = ear.emissions(log_probs)
    assert whole.tolist() == [[7, BLANK, BLANK, 7, 9, BLANK, BLANK, BLANK, BLANK, 12, BLANK, BLANK]]
    assert ctc_transcript(whole[0].tolist()) == ctc_transcript(ids[0].tolist())
    with ear.streaming(1):  # the repeat of 9 (and of 12) straddles a chunk boundary
        parts = [ear.emissions(log_probs[:, a:b]) for a, b in ((0, 5), (5, 10), (10, 12))]
    assert torch.equal(torch.cat(parts, 1), whole)


def test_spread_frames_puts_each_frame_on_its_first_position():
    chars = torch.tensor([[5, BLANK, 6]])
    assert spread_frames(chars, 2).tolist() == [[5, BLANK, BLANK, BLANK, 6, BLANK]]


def test_the_text_stage_trains_the_networks_head_from_a_session_9_checkpoint(tmp_path):
    """Session 9 kept the head beside the network (`copy_head.*`): it loads into `net`."""
    from dataclasses import replace

    from telugu_s2s.lit.s2s_text_module import S2STextModule
    from telugu_s2s.models.s2s import S2SConfig, S2SModel

    cfg = S2SConfig(num_codebooks=2, codebook_size=16, d_model=32, num_layers=1, num_heads=2,
                    context_frames=8, depth_d_model=16, depth_layers=1, depth_heads=2)  # fmt: skip
    speakers = str(CHECKPOINT_DIR / "speaker")
    old = S2STextModule(S2SModel(replace(cfg, copy_head=True)), speakers)
    state = {
        (k[4:] if k.startswith("net.copy_head.") else k): v for k, v in old.state_dict().items()
    }
    torch.save({"state_dict": state}, tmp_path / "last.ckpt")
    module = S2STextModule(
        S2SModel(replace(cfg, copy_head=True)), speakers, init_checkpoint=str(tmp_path / "last.ckpt")
    )  # fmt: skip
    torch.testing.assert_close(module.net.copy_head.key.weight, old.net.copy_head.key.weight)
    hidden, prev, user = _inputs()
    batch = {
        "assistant_text": torch.where(prev < V, prev, BLANK), "user_text": user,
        "num_frames": torch.tensor([10, 10]), "speaker_id": torch.tensor([0, 1]),
        "style_id": torch.tensor([0, 1]), "user_span": torch.tensor([[[2, 5]], [[0, 1]]]),
        "turn_mask": torch.tensor([[True], [False]]), "topic": torch.zeros(2, 1, dtype=torch.long),
        "emotion": torch.zeros(2, 1, dtype=torch.long), "sentiment": torch.zeros(2, 1),
        "turn_index": torch.ones(2, 1, dtype=torch.long),
    }  # fmt: skip
    losses = module._losses(batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and module.net.copy_head.key.weight.grad.abs().sum() > 0


def test_from_the_memory_it_copies_the_retrieved_turns_text_only():
    torch.manual_seed(0)
    head = CopyHead(CopyHeadConfig(dim=32, vocab_size=V, window=4, memory=True))
    hidden, prev, user = _inputs()
    turns = torch.randn(2, 3, 32)
    texts = torch.tensor([[60, 61, PAD], [70, 71, 72], [80, PAD, PAD]])  # three turns' text
    chars = texts[None].expand(2, -1, -1)  # (B, M, L)
    weights = torch.zeros(2, 10, 3)
    weights[:, :, 1] = 0.75  # the retrieval kept turns 1 and 2, turn 1 the more
    weights[:, :, 2] = 0.25
    memory = CopyMemory(head.memory_keys(turns, chars), chars.flatten(1), weights)
    keys, _ = head.keys(hidden, user, torch.full((2,), PAD))
    copy, _ = head.copy_distribution(hidden, prev, keys, user, torch.arange(10), memory)
    support = {int(i) for i in torch.nonzero(copy[1].sum(0))[:, 0]}
    assert support == {70, 71, 72, 80}  # item 1's user said nothing: only retrieved turns
    assert {50, 51, 52} < {int(i) for i in torch.nonzero(copy[0].sum(0))[:, 0]}
    torch.testing.assert_close(copy.sum(-1), torch.ones(2, 10))
    assert copy[1, :, 80].max() < copy[1, :, 70:73].sum(-1).min()  # turn 1 weighs more
    with torch.no_grad():  # a turn's keys depend on that turn alone, not on where it sits
        order = torch.tensor([1, 0, 2])
        moved = head.memory_keys(turns[:, order], chars[:, order])
    torch.testing.assert_close(moved.view(2, 3, 3, -1)[:, 0], memory.keys.view(2, 3, 3, -1)[:, 1])


def test_turn_characters_are_each_turns_words_in_order():
    text = torch.tensor([[BLANK, 5, 6, BLANK, 7, 8, 9, PAD]])
    spans = torch.tensor([[[0, 4], [4, 8], [0, 0]]])
    assert turn_characters(text, spans, 4).tolist() == [
        [[5, 6, PAD, PAD], [7, 8, 9, PAD], [PAD, PAD, PAD, PAD]]
    ]
    assert turn_characters(text, spans, 2)[0, 1].tolist() == [7, 8]  # cut at its length


def test_a_turns_text_runs_until_the_next_turn_starts():
    """A user stream's text may outlast its audio span: it belongs to the turn until the next."""
    spans = torch.tensor([[[2, 5], [9, 12], [0, 0]]])
    valid = torch.tensor([[True, True, False]])
    assert text_spans(spans, valid, 20).tolist() == [[[2, 9], [9, 20], [0, 0]]]


def test_it_learns_to_read_out_a_retrieved_turns_text_character_by_character():
    """Copying from the memory is learnable: given the turn the retrieval picked and the
    character it said last, the head learns to say the next one of that turn's text, on
    texts it never saw (fresh random ones each step)."""
    torch.manual_seed(0)
    B, M, L, D = 32, 3, 6, 16
    head = CopyHead(CopyHeadConfig(dim=D, vocab_size=V, window=4, memory=True))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)

    def batch():
        texts = torch.stack([torch.randperm(V - 4)[: M * L].view(M, L) + 4 for _ in range(B)])
        picked = torch.randint(0, M, (B,))
        said = texts[torch.arange(B), picked]  # (B, L): the retrieved turn's text
        prev = torch.cat([torch.full((B, 1), V), said[:, :-1]], 1)  # TEXT_START, then said
        weights = torch.nn.functional.one_hot(picked, M).float()[:, None].expand(-1, L, -1)
        return texts, said, prev, weights

    def log_probs(texts, prev, weights):
        memory = CopyMemory(
            head.memory_keys(torch.zeros(B, M, D), texts), texts.flatten(1), weights
        )
        nothing = torch.full((B, L), BLANK)  # the user said nothing within the window
        return head(torch.zeros(B, L, V), torch.zeros(B, L, D), prev, nothing, memory)

    for _ in range(150):
        texts, said, prev, weights = batch()
        loss = torch.nn.functional.nll_loss(log_probs(texts, prev, weights).transpose(1, 2), said)
        opt.zero_grad()
        loss.backward()
        opt.step()
    texts, said, prev, weights = batch()
    with torch.no_grad():
        accuracy = (log_probs(texts, prev, weights).argmax(-1) == said).float().mean()
    assert accuracy > 0.97, accuracy


def test_the_pointers_own_loss_trains_it_when_the_gate_is_shut():
    """Mixed through a shut gate, the text CE hardly reaches the pointer's keys; its own
    loss (on the characters its source holds) does, and leaves the others out."""
    head = _head(window=10)
    torch.nn.init.constant_(head.gate.bias, -12.0)  # shut, as a CPU duplex run left it
    hidden, prev, user = _inputs()
    targets = torch.full((2, 10), -100)
    targets[0, 6:9] = torch.tensor([50, 51, 99])  # 50, 51 were said; 99 was not
    log_probs, copy = head(torch.zeros(2, 10, V), hidden, prev, user, return_copy=True)
    mixed_ce = torch.nn.functional.nll_loss(log_probs.transpose(1, 2), targets)
    (mixed_grad,) = torch.autograd.grad(mixed_ce, head.key.weight, retain_graph=True)
    own = copy_loss(copy, targets)
    (own_grad,) = torch.autograd.grad(own, head.key.weight)
    assert own_grad.abs().sum() > 100 * mixed_grad.abs().sum()
    expected = -(copy[0, 6, 50].log() + copy[0, 7, 51].log()) / 2  # 99 is not in its source
    torch.testing.assert_close(own, expected)
    assert copy_loss(copy, torch.full((2, 10), -100)) == 0  # nothing to copy, no loss
