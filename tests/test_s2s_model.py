"""S2S model: stream alignment, step-by-step == full forward for sessions that start at
different times, per-slot sampling, silence forcing and checkpoint round trips."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from torch import Tensor

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.data.text import BLANK, PAD
from telugu_s2s.models.context_memory import TurnMemoryState
from telugu_s2s.models.s2s import (
    IGNORE_INDEX,
    ForcedFrame,
    S2SConfig,
    S2SModel,
    delay_codes,
    undelay_codes,
)
from telugu_s2s.models.s2s_generation import S2SGenerator, gumbel_noise, sample_tokens

# Small but complete: 3 codebooks, delay 2, a 6-frame window that the 12-frame runs overflow.
TINY = S2SConfig(
    num_codebooks=3, codebook_size=16, acoustic_delay=2, d_model=32, num_layers=2, num_heads=2,
    context_frames=6, depth_d_model=16, depth_layers=1, depth_heads=2, speaker_dim=8,
    memory_attention_dim=8, memory_top_k=2,
)  # fmt: skip
# The same with an ear (models/code_hearing.py) feeding the temporal input.
TINY_EAR = replace(TINY, hearing_layers=2, hearing_hidden=8, hearing_embed_dim=8)
# And with the copy head over what the ear heard (models/copy_head.py).
TINY_COPY = replace(TINY_EAR, copy_head=True)
# And from the context memory's turns' text too.
TINY_RECALL = replace(TINY_COPY, copy_memory=True, copy_memory_chars=5)
K, CARD, V, D = TINY.num_codebooks, TINY.codebook_size, TINY.text_vocab_size, TINY.d_model


def make(cfg: S2SConfig = TINY) -> S2SModel:
    torch.manual_seed(0)
    model = S2SModel(cfg).eval()
    with torch.no_grad():  # open the memory gate so that the memory visibly matters
        model.memory.gate.fill_(2.0)
        if model.copy_head is not None:  # and the copy head's
            model.copy_head.gate.bias.fill_(1.0)
    return model


def session(frames: int, seed: int) -> dict[str, Tensor]:
    """One session's inputs, batch of 1."""
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(1, 10, D, generator=g)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[:, -1 - seed % 4 :] = True  # 1..4 past turns
    return {
        "user_codes": torch.randint(0, CARD, (1, K, frames), generator=g),
        "assistant_codes": torch.randint(0, CARD, (1, K, frames), generator=g),
        "assistant_text": torch.randint(0, V, (1, frames), generator=g),
        "speaker_emb": torch.nn.functional.normalize(torch.randn(1, 8, generator=g), dim=-1),
        "style_id": torch.tensor([seed % 3]),
        "memory": memory,
        "memory_mask": mask,
        "memory_chars": torch.randint(4, V, (1, 10, 5), generator=g),  # each turn's text
    }


def test_delay_and_undelay() -> None:
    codes = torch.arange(2 * 3 * 5).view(2, 3, 5)
    delayed = delay_codes(codes, 2, fill=-1)
    assert delayed[0, 0].tolist() == codes[0, 0].tolist()  # codebook 0 stays
    assert delayed[0, 1].tolist() == [-1, -1, 5, 6, 7]  # codebook 1 of frame t at t + 2
    restored = undelay_codes(delayed, 2, fill=-1)
    assert torch.equal(restored[..., :3], codes[..., :3])
    assert (restored[:, 1:, 3:] == -1).all() and torch.equal(restored[:, 0], codes[:, 0])


def test_targets_follow_the_documented_alignment() -> None:
    model = make()
    codes = torch.randint(0, CARD, (1, K, 6))
    text = torch.tensor([[5, 6, PAD, 7, 8, 9]])
    user = torch.tensor([[10, 11, 12, 13, PAD, 14]])
    targets = model.targets(codes, text, user, lengths=torch.tensor([5]))
    assert targets.text.tolist() == [[5, 6, IGNORE_INDEX, 7, 8, IGNORE_INDEX]]  # PAD, length
    assert targets.user_text.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 10, 11, 12, IGNORE_INDEX]]
    assert targets.codes[0, 0, :5].tolist() == codes[0, 0, :5].tolist()
    assert targets.codes[0, 1].tolist() == [IGNORE_INDEX] * 2 + codes[0, 1, :3].tolist() + [
        IGNORE_INDEX
    ]


@pytest.mark.parametrize("cfg", [TINY, TINY_EAR, TINY_COPY], ids=["head", "ear", "copy"])
def test_the_future_does_not_leak(cfg: S2SConfig) -> None:
    model = make(cfg)
    inputs = session(10, seed=1)
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["user_codes"][..., 6] = (changed["user_codes"][..., 6] + 1) % CARD
    changed["assistant_text"][:, 6] = (changed["assistant_text"][:, 6] + 1) % V
    changed["assistant_codes"][:, 1:, 4] = (changed["assistant_codes"][:, 1:, 4] + 1) % CARD
    with torch.no_grad():
        out, out_changed = model(**inputs), model(**changed)
    for name in ("text_logits", "user_text_logits", "hidden"):
        a, b = getattr(out, name), getattr(out_changed, name)
        torch.testing.assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
        assert not torch.allclose(a[:, 6], b[:, 6])  # user codes of frame 6 are an input at 6
    if cfg.hearing_layers:  # the ear's CTC steps of frames < 6 ignore frame 6
        R = cfg.hearing_sub_frames
        a, b = out.hearing_log_probs, out_changed.hearing_log_probs
        torch.testing.assert_close(a[:, : 6 * R], b[:, : 6 * R], atol=0, rtol=0)
        assert not torch.equal(a[:, 6 * R], b[:, 6 * R])
        with torch.no_grad():  # the ear's output handed in (as training does) changes nothing
            given = model(**inputs, heard=model.hearing(inputs["user_codes"]))
        torch.testing.assert_close(given.text_logits, out.text_logits, atol=0, rtol=0)
    if cfg.copy_head:  # the ear heard something to copy, and it moved the text's distribution
        plain = model.text_head(out.hidden).log_softmax(-1)
        assert not torch.allclose(out.text_logits, plain, atol=1e-3)
    # Codebooks >= 1 of frame 4 sit at delayed position 6: what precedes them there may change.
    torch.testing.assert_close(
        out.code_logits[..., :6, :], out_changed.code_logits[..., :6, :], atol=0, rtol=0
    )


def teacher_frame(inputs: dict[str, Tensor], t: int) -> tuple[Tensor, Tensor, Tensor]:
    delayed = delay_codes(inputs["assistant_codes"], TINY.acoustic_delay, TINY.codebook_size)
    return inputs["user_codes"][:, :, t], inputs["assistant_text"][:, t], delayed[:, :, t]


@pytest.mark.parametrize(
    "cfg", [TINY, TINY_EAR, TINY_COPY, TINY_RECALL], ids=["head", "ear", "copy", "recall"]
)
def test_stepping_equals_forward_for_sessions_that_start_at_different_times(
    cfg: S2SConfig,
) -> None:
    """Slot 0 runs session A for 12 frames. Slot 1 runs session X for 5 frames, is reset
    (X leaves, Y joins at frame 5) and runs Y for 7 frames. Each slot's step logits must
    equal a fresh single-session forward on its own inputs."""
    model = make(cfg)
    a, x, y = session(12, seed=0), session(5, seed=1), session(7, seed=2)
    x["memory_mask"][:] = False  # X has no memory, Y and A have different ones
    with torch.no_grad():
        expected_a, expected_y = model(**a), model(**y)
        steps = []
        with model.streaming(2):
            for t in range(12):
                if t == 5:
                    model.reset_streaming(torch.tensor([False, True]))
                other, t1 = (x, t) if t < 5 else (y, t - 5)
                frames = [teacher_frame(a, t), teacher_frame(other, t1)]
                user, text, codes = (torch.cat(parts) for parts in zip(*frames, strict=True))
                batched = {
                    k: torch.cat([a[k], other[k]])
                    for k in ("speaker_emb", "style_id", "memory", "memory_mask", "memory_chars")
                }
                forced = ForcedFrame(mask=torch.ones(2, dtype=torch.bool), text=text, codes=codes)
                steps.append(model.step(user, **batched, forced=forced))
    for name, dims in (
        ("text_logits", 1),
        ("user_text_logits", 1),
        ("hidden", 1),
        ("code_logits", 2),
    ):
        stepped = torch.stack(
            [getattr(s, name) for s in steps], dim=dims
        )  # time axis like forward's
        full_a, full_y = getattr(expected_a, name), getattr(expected_y, name)
        torch.testing.assert_close(stepped[:1], full_a, atol=1e-4, rtol=0, msg=name)
        torch.testing.assert_close(
            stepped[1:].narrow(dims, 5, 7), full_y, atol=1e-4, rtol=0, msg=name
        )
    if cfg.hearing_layers:  # the ear's greedy ids, R per frame, as in the offline pass
        heard = torch.cat([s.hearing_ids for s in steps], dim=1)  # (2, 12 * R)
        R = cfg.hearing_sub_frames
        assert torch.equal(heard[:1], expected_a.hearing_log_probs.argmax(-1))
        assert torch.equal(heard[1:, 5 * R :], expected_y.hearing_log_probs.argmax(-1))
    # The memory matters here: without it the same steps give other logits.
    with torch.no_grad():
        no_memory = model(**{**a, "memory": None, "memory_mask": None})
        other_text = model(**{**a, "memory_chars": (a["memory_chars"] + 1) % V})
    assert not torch.allclose(no_memory.text_logits, expected_a.text_logits, atol=1e-3)
    # And with a copy head over the memory, so does the memory turns' text.
    changed = not torch.allclose(other_text.text_logits, expected_a.text_logits, atol=1e-4)
    assert changed == cfg.copy_memory


def test_generator_outputs_the_undelayed_frames() -> None:
    model = make()
    model.set_silence_codes(torch.tensor([3, 4, 5]))
    user = torch.randint(0, CARD, (1, K, 8))
    with S2SGenerator(model, batch_size=1) as gen:
        gen.join(0, temperature=0.0)
        outs = [gen.step(user[:, :, t]) for t in range(8)]
    assert [o.codes_valid.item() for o in outs] == [False, False] + [True] * 6
    assert outs[0].assistant_codes.tolist() == [[3, 4, 5]]  # silence until a frame is complete
    # The same greedy stream on the model gives the delayed codes it fed back.
    with torch.no_grad(), model.streaming(1):
        style = torch.zeros(1, dtype=torch.long)
        fed = [model.step(user[:, :, t], model.null_speaker[None], style).codes for t in range(8)]
    fed = torch.stack(fed, dim=-1)  # (1, K, 8) delayed layout
    assert (fed[:, 1:, :2] == TINY.codebook_size).all()  # no acoustic codes before frame d
    assert (fed[:, 1:, 2:] < TINY.codebook_size).all()
    frames = undelay_codes(fed, TINY.acoustic_delay, fill=-1)  # (1, K, 8)
    for t in range(2, 8):
        assert outs[t].assistant_codes.tolist() == frames[:, :, t - 2].tolist()


def run_generator(
    model: S2SModel, user: Tensor, settings: list[dict], silence_from: int | None = None,
    guided: bool = False,
) -> list:  # fmt: skip
    with S2SGenerator(model, batch_size=len(settings), speaker_guidance=guided) as gen:
        for slot, kwargs in enumerate(settings):
            gen.join(slot, **kwargs)
        outs = []
        for t in range(user.shape[-1]):
            if t == silence_from:
                gen.force_silence(torch.tensor([True] + [False] * (len(settings) - 1)))
            outs.append(gen.step(user[:, :, t]))
    return outs


def tokens(outs: list, slot: int) -> list[list[int]]:
    return [[o.text_token[slot].item(), *o.assistant_codes[slot].tolist()] for o in outs]


def test_sampling_is_per_slot_and_reproducible() -> None:
    model = make()
    user = torch.randint(0, CARD, (1, K, 10)).expand(4, -1, -1)
    settings = [
        {"temperature": 0.0, "seed": 1},
        {"temperature": 1.0, "top_k": 1, "seed": 2},  # top-k 1 is greedy whatever the temperature
        {"temperature": 1.5, "seed": 3},
        {"temperature": 1.5, "seed": 4},
    ]
    outs = run_generator(model, user, settings)
    again = run_generator(model, user, settings)
    assert tokens(outs, 0) == tokens(again, 0) and tokens(outs, 2) == tokens(again, 2)  # seeded
    assert tokens(outs, 1) == tokens(outs, 0)  # identical inputs, both greedy
    assert tokens(outs, 2) != tokens(outs, 0)  # sampled at a high temperature
    assert tokens(outs, 2) != tokens(outs, 3)  # another seed, another draw
    with torch.no_grad(), model.streaming(1):  # greedy generator == greedy model steps
        greedy = [
            model.step(user[:1, :, t], model.null_speaker[None], torch.zeros(1, dtype=torch.long))
            for t in range(10)
        ]
    assert [o.text_token.item() for o in greedy] == [row[0] for row in tokens(outs, 0)]


def test_speaker_guidance_spans_the_null_and_the_requested_speaker() -> None:
    """w = 1 samples exactly as without guidance, w = 0 exactly as the null speaker, a large w
    moves away from both; the null-speaker twins never show in the output."""
    model = make()
    user = torch.randint(0, CARD, (1, K, 10)).expand(3, -1, -1)
    voice = torch.nn.functional.normalize(torch.randn(8), dim=0)
    base = {"speaker_emb": voice, "temperature": 1.0, "seed": 5}
    plain = run_generator(model, user, [base, {**base, "speaker_emb": None}, base])
    weights = [{**base, "guidance": w} for w in (1.0, 0.0, 6.0)]
    guided = run_generator(model, user, weights, guided=True)
    assert len(guided[0].text_token) == 3  # the slots, not their twins
    assert tokens(guided, 0) == tokens(plain, 0)
    assert tokens(guided, 1) == tokens(plain, 1)
    assert tokens(guided, 2) not in (tokens(plain, 0), tokens(plain, 1))
    with S2SGenerator(model, batch_size=1) as gen, pytest.raises(ValueError, match="guidance"):
        gen.join(0, guidance=2.0)


def test_sample_tokens_respects_temperature_and_top_k() -> None:
    logits = torch.tensor([[0.0, 3.0, 2.5, 2.0, -1.0]]).expand(4000, -1)
    temperature = torch.full((4000,), 2.0)
    noise = gumbel_noise(torch.rand(4000, 5, generator=torch.Generator().manual_seed(0)))
    drawn = sample_tokens(logits, temperature, torch.full((4000,), 3), noise)
    assert set(drawn.tolist()) == {1, 2, 3}  # only the 3 best, each of them drawn
    free = sample_tokens(logits, temperature, torch.zeros(4000, dtype=torch.long), noise)
    assert set(free.tolist()) == {0, 1, 2, 3, 4}
    share = (free == 1).float().mean().item()  # softmax(logits / 2)[1] = 0.35
    assert abs(share - torch.softmax(logits[0] / 2, -1)[1].item()) < 0.03
    mixed = sample_tokens(
        logits[:2], torch.tensor([0.0, 2.0]), torch.zeros(2, dtype=torch.long), noise[:2]
    )
    assert mixed[0] == 1  # temperature 0: greedy


def test_force_silence_makes_a_slot_quiet_and_leaves_others_alone() -> None:
    model = make()
    model.set_silence_codes(torch.tensor([7, 8, 9]))
    user = torch.randint(0, CARD, (1, K, 8)).expand(2, -1, -1)
    settings = [{"temperature": 0.0}, {"temperature": 0.0}]
    free = run_generator(model, user, settings)
    silenced = run_generator(model, user, settings, silence_from=4)
    assert tokens(silenced, 0)[:4] == tokens(free, 0)[:4]
    assert all(row == [BLANK, 7, 8, 9] for row in tokens(silenced, 0)[4:])
    assert tokens(silenced, 1) == tokens(free, 1)


def test_join_resets_the_slot_and_memory_changes_the_output() -> None:
    model = make()
    user = torch.randint(0, CARD, (1, K, 6)).expand(2, -1, -1)
    memory = TurnMemoryState.from_tensors(torch.randn(3, D))
    with S2SGenerator(model, batch_size=2) as gen:
        gen.join(0, temperature=0.0)
        gen.join(1, temperature=0.0)
        first = [gen.step(user[:, :, t]).hidden for t in range(6)]
        gen.leave(1)
        gen.join(1, temperature=0.0)  # a new session in slot 1: same inputs, same outputs
        second = [gen.step(user[:, :, t]).hidden for t in range(6)]
        gen.join(1, temperature=0.0, memory=memory)
        with_memory = [gen.step(user[:, :, t]).hidden for t in range(6)]
    torch.testing.assert_close(
        torch.stack(second)[:, 1], torch.stack(first)[:, 1], atol=1e-5, rtol=0
    )
    assert not torch.allclose(torch.stack(with_memory)[:, 1], torch.stack(first)[:, 1], atol=1e-3)


def test_conditioning_speaker_and_style() -> None:
    model = make()
    inputs = session(4, seed=0)
    with torch.no_grad():
        base = model(**inputs).text_logits
        other_speaker = model(**{**inputs, "speaker_emb": -inputs["speaker_emb"]}).text_logits
        other_style = model(**{**inputs, "style_id": (inputs["style_id"] + 1) % 3}).text_logits
        null = model(**{**inputs, "speaker_emb": None}).text_logits
        explicit_null = model(**{**inputs, "speaker_emb": model.null_speaker[None]}).text_logits
    assert not torch.allclose(base, other_speaker) and not torch.allclose(base, other_style)
    torch.testing.assert_close(null, explicit_null)
    model.check_speaker_bank(
        type("Bank", (), {"encoder_fingerprint": "abc"})()
    )  # no fingerprint: any bank
    model.cfg.speaker_fingerprint = "xyz"
    with pytest.raises(ValueError, match="trained with xyz"):
        model.check_speaker_bank(type("Bank", (), {"encoder_fingerprint": "abc"})())


def test_checkpoint_round_trip(tmp_path) -> None:
    model = make()
    model.set_silence_codes(torch.tensor([1, 2, 3]))
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded, S2SModel) and asdict(loaded.cfg) == asdict(model.cfg)
    assert loaded.cfg.styles == ("default", "formal", "casual")  # tuples rebuilt from JSON lists
    assert loaded.silence_codes.tolist() == [1, 2, 3]
    inputs = session(5, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).code_logits, model(**inputs).code_logits)


def test_base_preset_builds() -> None:
    with torch.device("meta"):
        model = S2SModel(S2SConfig.base())
    params = sum(p.numel() for p in model.parameters())
    assert model.cfg.codebook_size == 2048 and 50e6 < params < 300e6, params
