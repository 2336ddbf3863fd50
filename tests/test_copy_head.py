"""The copy head (models/copy_head.py): what it may copy, its mixing, and that one frame
alone gives what the whole sequence gives."""

from __future__ import annotations

import torch

from telugu_s2s.data.text import BLANK
from telugu_s2s.models.copy_head import CopyHead, CopyHeadConfig
from telugu_s2s.paths import CHECKPOINT_DIR

V = 140


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    user = torch.full((2, 10), BLANK)
    user[0, 2:5] = torch.tensor([50, 51, 52])  # the first item's user says three characters
    hidden = torch.randn(2, 10, 32, generator=g)
    prev = torch.randint(4, V + 1, (2, 10), generator=g)  # V is TEXT_START
    return hidden, prev, user


def test_it_copies_only_what_the_user_said_within_its_window():
    torch.manual_seed(0)
    head = CopyHead(CopyHeadConfig(dim=32, vocab_size=V, window=4))
    hidden, prev, user = _inputs()
    keys = head.keys(hidden, user)
    copy, gate = head.copy_distribution(hidden, prev, user, torch.arange(10), keys)
    said = {50, 51, 52}
    support = {int(i) for i in torch.nonzero(copy[0].sum(0))[:, 0]}
    assert support == said
    totals = copy[0].sum(-1)  # frames 2..7 see a character within 4 frames; others nothing
    torch.testing.assert_close(totals, torch.tensor([0.0, 0, 1, 1, 1, 1, 1, 1, 0, 0]))
    assert gate[1].abs().sum() == 0 and gate[0, 2] > 0  # the second item's user said nothing


def test_mixing_gives_log_probabilities_and_leaves_the_text_head_alone_with_nothing_to_copy():
    torch.manual_seed(0)
    head = CopyHead(CopyHeadConfig(dim=32, vocab_size=V, window=4))
    hidden, prev, user = _inputs()
    logits = torch.randn(2, 10, V)
    mixed = head.mix(logits, hidden, prev, user, torch.arange(10), head.keys(hidden, user))
    torch.testing.assert_close(mixed.exp().sum(-1), torch.ones(2, 10))
    torch.testing.assert_close(mixed[1], logits[1].log_softmax(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(mixed[0, 3], logits[0, 3].log_softmax(-1))


def test_one_frame_alone_equals_that_frame_of_the_whole_sequence():
    torch.manual_seed(0)
    head = CopyHead(CopyHeadConfig(dim=32, vocab_size=V, window=6))
    hidden, prev, user = _inputs(1)
    logits = torch.randn(2, 10, V)
    whole = head.mix(logits, hidden, prev, user, torch.arange(10), head.keys(hidden, user))
    keys = head.keys(hidden[:, :1], user[:, :1])
    for t in range(10):
        if t:  # a stream adds each frame's key as it comes, with the character before it
            new = head.keys(hidden[:, t : t + 1], user[:, t : t + 1], before=user[:, t - 1])
            keys = torch.cat([keys, new], dim=1)
        torch.testing.assert_close(keys, head.keys(hidden[:, : t + 1], user[:, : t + 1]))
        alone = head.mix(
            logits[:, t : t + 1], hidden[:, t : t + 1], prev[:, t : t + 1], user[:, : t + 1],
            torch.tensor([t]), keys,
        )  # fmt: skip
        torch.testing.assert_close(alone[:, 0], whole[:, t])


def test_the_text_stage_trains_with_it_from_a_text_stage_checkpoint(tmp_path):
    from telugu_s2s.lit.s2s_text_module import S2STextModule
    from telugu_s2s.models.s2s import S2SConfig, S2SModel

    cfg = S2SConfig(num_codebooks=2, codebook_size=16, d_model=32, num_layers=1, num_heads=2,
                    context_frames=8, depth_d_model=16, depth_layers=1, depth_heads=2)  # fmt: skip
    speakers = str(CHECKPOINT_DIR / "speaker")
    plain = S2STextModule(S2SModel(cfg), speakers)
    torch.save({"state_dict": plain.state_dict()}, tmp_path / "last.ckpt")
    module = S2STextModule(
        S2SModel(cfg), speakers, copy_head=True, init_checkpoint=str(tmp_path / "last.ckpt")
    )  # fmt: skip
    torch.testing.assert_close(
        module.user_input.embedding.weight, plain.user_input.embedding.weight
    )
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
    assert torch.isfinite(losses["loss"]) and module.copy_head.key.weight.grad.abs().sum() > 0
