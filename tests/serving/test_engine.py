"""The model engine on random-weight checkpoints: the Engine protocol, batching that never
mixes sessions, silence and its release, turns into the context memory and back through the
store, checkpoint errors, no Lightning, and a real server around it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.client import S2SClient
from telugu_s2s.data.corpus import EMOTIONS, TOPICS
from telugu_s2s.data.text import PAD, TextTokenizer
from telugu_s2s.models.codec import CodecConfig, CodecModel
from telugu_s2s.models.s2s import S2SConfig, S2SModel
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.serving.context import Aggregates, Preferences
from telugu_s2s.serving.engine import ModelEngine, segment_turn
from telugu_s2s.serving.engine_api import (
    ENGINE_COMPONENTS,
    Engine,
    SlotConfig,
    StepResult,
    TurnRecord,
)
from telugu_s2s.serving.server import ServerSettings
from telugu_s2s.serving.store import SessionStore
from tests.serving.conftest import silence
from tests.serving.fakes import running_server

FRAME = 1280
# Small S2S over the default codec (8 x 1024 codes) and the committed speaker bank (192-dim).
S2S = S2SConfig(
    d_model=64, num_layers=2, num_heads=2, context_frames=32, depth_d_model=32, depth_layers=1,
    depth_heads=2, memory_attention_dim=32,
)  # fmt: skip


def export_checkpoints(root: Path, s2s: S2SConfig = S2S) -> Path:
    torch.manual_seed(0)
    save_pretrained(CodecModel(CodecConfig()), root / "codec")
    model = S2SModel(s2s)
    with torch.no_grad():  # open the memory gate so that the memory visibly matters
        model.memory.gate.fill_(2.0)
    save_pretrained(model, root / "s2s")
    (root / "speaker").mkdir()
    for name in ("speaker_bank.yaml", "speaker_bank.safetensors"):
        shutil.copy(REPO_ROOT / "checkpoints" / "speaker" / name, root / "speaker" / name)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    return export_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def user_audio(seed: int, frames: int, amplitude: float = 0.1) -> np.ndarray:
    """Noise plus a seed-dependent tone, (frames * FRAME,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * FRAME) / 16000
    tone = np.sin(2 * np.pi * (150 + 50 * seed) * t)
    return (amplitude * (0.5 * rng.standard_normal(t.shape) + tone)).astype(np.float32)


def frames_of(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]


def test_engine_implements_the_protocol(checkpoints):
    engine = ModelEngine(checkpoints, max_slots=2)
    assert isinstance(engine, Engine)
    assert (engine.sample_rate, engine.frame_size) == (16000, FRAME)
    assert engine.speakers == ["arjun", "ravi", "priya", "lakshmi"]
    first, second = engine.join(SlotConfig("priya")), engine.join(SlotConfig("ravi", "casual"))
    assert {first, second} == {0, 1}
    with pytest.raises(RuntimeError, match="busy"):
        engine.join(SlotConfig("arjun"))
    with pytest.raises(ValueError, match="unknown speaker"):
        engine.configure(first, speaker="nobody")
    engine.configure(first, speaker="lakshmi", style="casual", temperature=0.0, top_k=5)
    assert engine.slots[first].config.speaker == "lakshmi"
    row = engine.row(first)
    assert engine.generator.style[row] == 2 and engine.generator.top_k[row] == 5
    result = engine.step({second: np.zeros(FRAME, np.float32)})[second]  # one slot of two steps
    assert isinstance(result, StepResult) and result.audio.shape == (FRAME,)
    assert result.audio.dtype == np.float32 and set(result.timings) == set(ENGINE_COMPONENTS)
    engine.leave(first)
    assert engine.join(SlotConfig("arjun")) == first  # a freed slot is reused
    engine.close()


# Sessions joining and leaving at different ticks; "c" reuses the slot that "b" left.
SESSIONS = {
    "a": {"join": 0, "leave": 12, "speaker": "priya", "style": "formal", "seed": 1},
    "b": {"join": 2, "leave": 7, "speaker": "arjun", "style": "casual", "seed": 2},
    "c": {"join": 8, "leave": 14, "speaker": "lakshmi", "style": "formal", "seed": 3},
}


def config(name: str, memory: np.ndarray) -> SlotConfig:
    s = SESSIONS[name]
    context = [TurnRecord(index=1, memory=memory)] if name == "c" else []  # only c has a past
    return SlotConfig(s["speaker"], s["style"], temperature=0.0, top_k=0, context=context)


def test_the_ears_transcript_pieces_join_into_its_offline_transcript(tmp_path):
    """With an ear, each frame's user text is the new characters of its CTC ids (repeats
    merge across frames); a session that skips a tick keeps its own ear and copy-head state
    (the copy head copies what the ear heard): it says what it says alone."""
    ear = S2SConfig(**{**S2S.__dict__, "hearing_layers": 1, "hearing_hidden": 16,
                       "hearing_embed_dim": 16, "copy_head": True})  # fmt: skip
    export_checkpoints(tmp_path, ear)
    model = load_pretrained(tmp_path / "s2s")
    with torch.no_grad():  # a louder head: the random ear's characters change frame by frame
        model.hearing.head.weight.normal_(std=2.0)
        model.copy_head.gate.bias.fill_(2.0)  # and what it heard is mostly what is said
    save_pretrained(model, tmp_path / "s2s")
    engine = ModelEngine(tmp_path, max_slots=2)
    audio = {name: frames_of(user_audio(seed, 10)) for name, seed in (("a", 1), ("b", 2))}
    slots = {name: engine.join(SlotConfig("ravi", temperature=0.0)) for name in audio}
    results: dict[str, list[StepResult]] = {name: [] for name in audio}
    for tick in range(11):
        frames = {slots["a"]: audio["a"][tick]} if tick < 10 else {}
        if tick != 4:  # b skips tick 4 and catches up at the end
            frames[slots["b"]] = audio["b"][tick - (tick > 4)]
        for slot, result in engine.step(frames).items():
            results["a" if slot == slots["a"] else "b"].append(result)
    pieces = {name: [r.user_text for r in steps] for name, steps in results.items()}
    codec, model = load_pretrained(tmp_path / "codec"), load_pretrained(tmp_path / "s2s")
    for name, clips in audio.items():  # offline, on fresh copies of the served models
        with torch.no_grad():
            codes = codec.encode(torch.from_numpy(np.concatenate(clips))[None, None],
                                 model.cfg.num_codebooks)  # fmt: skip
            log_probs = model.hearing(codes).log_probs
        frames = torch.tensor([codes.shape[-1]])
        assert " ".join("".join(pieces[name]).split()) == model.hearing.decode(log_probs, frames)[0]
        alone = ModelEngine(tmp_path, max_slots=1)
        slot = alone.join(SlotConfig("ravi", temperature=0.0))
        said = [alone.step({slot: clip})[slot].assistant_text for clip in clips]
        assert said == [r.assistant_text for r in results[name]], name
        alone.close()
    assert all(len("".join(p)) >= 2 for p in pieces.values())  # it did hear something
    engine.close()


def test_a_turns_heard_words_enter_the_copy_memory_and_come_back_from_the_store(tmp_path):
    """With a copy head over the memory, a finished turn adds its words as the ear heard
    them; a session restored from the store reads the stored text into the same place."""
    recall = S2SConfig(**{**S2S.__dict__, "hearing_layers": 1, "hearing_hidden": 16,
                          "hearing_embed_dim": 16, "copy_head": True, "copy_memory": True,
                          "copy_memory_chars": 24})  # fmt: skip
    export_checkpoints(tmp_path, recall)
    model = load_pretrained(tmp_path / "s2s")
    with torch.no_grad():  # a louder ear: the random one otherwise hears nothing
        model.hearing.head.weight.normal_(std=2.0)
    save_pretrained(model, tmp_path / "s2s")
    engine = ModelEngine(tmp_path, max_slots=2, release_quiet_frames=3)
    slot = engine.join(SlotConfig("priya", temperature=0.0))
    engine.silence(slot)
    speech, quiet = frames_of(user_audio(5, 6)), frames_of(np.zeros(3 * FRAME, np.float32))
    heard = "".join(engine.step({slot: f})[slot].user_text for f in speech + quiet * 2)
    analysis = engine.end_turn(slot)
    gen, row = engine.generator, engine.row(slot)
    words = " ".join(heard.split())[:24]
    assert words and TextTokenizer().decode(gen.memory_chars[row, -1].tolist()) == words
    assert (gen.memory_chars[row, :-1] == PAD).all()
    store = SessionStore(":memory:")
    store.create("s1", Preferences())
    store.save_turn(
        "s1", TurnRecord(index=1, user_text=words, memory=analysis.memory), Aggregates()
    )
    other = engine.join(SlotConfig("priya", context=store.load("s1").turns))
    torch.testing.assert_close(gen.memory_chars[engine.row(other)], gen.memory_chars[row])
    keys = gen.memory_char_keys.view(2, 10, 24, -1)
    torch.testing.assert_close(keys[engine.row(other), -1], keys[row, -1])
    # The judge's transcript, when it comes, replaces what the ear heard in that entry.
    engine.set_turn_text(slot, analysis.memory_turn, "నా పేరు రవి")
    assert TextTokenizer().decode(gen.memory_chars[row, -1].tolist()) == "నా పేరు రవి"
    assert not torch.equal(gen.memory_char_keys.view(2, 10, 24, -1)[row, -1], keys[row, -1])
    before = gen.memory_chars.clone()
    engine.set_turn_text(slot, analysis.memory_turn + 1, "ఇంకొకటి")  # no such entry
    engine.set_turn_text(other, analysis.memory_turn, "ఇంకొకటి")  # not that session's entry
    assert torch.equal(gen.memory_chars, before)
    kept = gen.memory_chars[engine.row(other)].clone()
    engine.leave(slot)
    engine.set_turn_text(slot, analysis.memory_turn, "ఇంకొకటి")  # the session has left
    assert torch.equal(gen.memory_chars[engine.row(other)], kept)
    engine.close()


def test_batched_slots_equal_each_session_run_alone(checkpoints):
    memory = np.random.default_rng(0).standard_normal(S2S.d_model).astype(np.float32)
    audio = {
        n: frames_of(user_audio(s["seed"], s["leave"] - s["join"])) for n, s in SESSIONS.items()
    }
    engine = ModelEngine(checkpoints, max_slots=3)
    slots: dict[str, int] = {}
    batched: dict[str, list[StepResult]] = {n: [] for n in SESSIONS}
    for tick in range(14):
        for name, s in SESSIONS.items():
            if s["leave"] == tick:
                engine.leave(slots.pop(name))
            if s["join"] == tick:
                slots[name] = engine.join(config(name, memory))
        frames = {slot: audio[name][tick - SESSIONS[name]["join"]] for name, slot in slots.items()}
        results = engine.step(frames)
        for name, slot in slots.items():
            batched[name].append(results[slot])
    assert slots == {"c": 1}  # c took b's slot
    for name in SESSIONS:
        alone = ModelEngine(checkpoints, max_slots=1)
        slot = alone.join(config(name, memory))
        single = [alone.step({slot: frame})[slot] for frame in audio[name]]
        assert len(single) == len(batched[name])
        for t, (one, many) in enumerate(zip(single, batched[name], strict=True)):
            where = f"session {name}, frame {t}"
            np.testing.assert_allclose(many.audio, one.audio, atol=1e-4, err_msg=where)
            assert (many.speaking, many.assistant_text, many.user_text) == (
                one.speaking, one.assistant_text, one.user_text,
            ), where  # fmt: skip
    # The sessions are really different (speaker, style, input, memory).
    assert not np.allclose(batched["a"][3].audio, batched["b"][1].audio, atol=1e-3)


def test_speaker_guidance_changes_the_voice_and_keeps_slots_apart(checkpoints):
    """A guided engine (null-speaker twins) changes what the same greedy session says, and a
    session beside another still equals the session run alone."""
    audio = frames_of(user_audio(1, 8))
    memory = np.zeros(S2S.d_model, np.float32)

    def run(guidance: float, slots: int = 1, name: str = "a") -> list[StepResult]:
        engine = ModelEngine(checkpoints, max_slots=slots, speaker_guidance=guidance)
        for other in ("b",) * (slots - 1):
            engine.join(config(other, memory))
        slot = engine.join(config(name, memory))
        return [engine.step({slot: frame})[slot] for frame in audio]

    plain, strong = run(1.0), run(4.0)
    assert any(
        not np.allclose(p.audio, g.audio, atol=1e-4) for p, g in zip(plain, strong, strict=True)
    )
    beside = run(4.0, slots=2)
    for alone, batched in zip(strong, beside, strict=True):
        np.testing.assert_allclose(batched.audio, alone.audio, atol=1e-4)


def test_silence_end_turn_and_memory_round_trip_through_the_store(checkpoints):
    engine = ModelEngine(checkpoints, max_slots=2, release_quiet_frames=3)
    slot = engine.join(SlotConfig("priya", temperature=0.0))
    engine.silence(slot)  # listen first: the random model would otherwise talk at once
    speech, quiet = frames_of(user_audio(5, 6)), frames_of(np.zeros(3 * FRAME, np.float32))
    listening = [engine.step({slot: f})[slot] for f in speech + quiet]
    assert not any(r.speaking or r.assistant_text for r in listening)
    assert not engine.slots[slot].silenced  # the user's utterance ended: released
    reply = [engine.step({slot: f})[slot] for f in quiet]
    assert all(r.speaking for r in reply)  # random weights talk as soon as they may

    analysis = engine.end_turn(slot, heard_frames=2)
    turn = engine.slots[slot].turns[-1]
    assert (turn.user_frames, turn.reply_frames, turn.heard_frames) == (6, 3, 2)
    assert turn.assistant_text == "".join(r.assistant_text for r in reply[:2])  # heard prefix
    assert -1.0 <= analysis.sentiment <= 1.0 and analysis.topic in TOPICS
    assert analysis.emotion in EMOTIONS and abs(sum(analysis.emotions.values()) - 1) < 1e-5
    assert analysis.emotion == max(analysis.emotions, key=analysis.emotions.get)
    assert list(analysis.topics) == list(TOPICS) and abs(sum(analysis.topics.values()) - 1) < 1e-5
    assert analysis.topic == max(analysis.topics, key=analysis.topics.get)
    assert analysis.memory.shape == (S2S.d_model,) and analysis.memory.dtype == np.float32
    gen = engine.generator
    assert gen.memory_mask[engine.row(slot)].tolist() == [False] * 9 + [True]
    np.testing.assert_allclose(gen.memory[engine.row(slot), -1].numpy(), analysis.memory, atol=1e-6)
    assert len(engine.slots[slot].hidden) == 0  # the window restarts after the turn

    store = SessionStore(":memory:")
    store.create("s1", Preferences())
    store.save_turn("s1", TurnRecord(index=1, memory=analysis.memory), Aggregates())
    restored = store.load("s1").turns
    other = engine.join(SlotConfig("priya", temperature=0.0, context=restored))
    rows = engine.row(other), engine.row(slot)
    assert gen.memory_mask[rows[0]].tolist() == gen.memory_mask[rows[1]].tolist()
    torch.testing.assert_close(gen.memory[rows[0]], gen.memory[rows[1]])
    # The memory changes what the model does: the same input without it gives other states.
    probe = frames_of(user_audio(7, 3))
    with_memory = [engine.step({other: f}) for f in probe]
    engine.leave(other)
    other = engine.join(SlotConfig("priya", temperature=0.0))
    without = [engine.step({other: f}) for f in probe]
    assert not np.allclose(with_memory[-1][other].audio, without[-1][other].audio, atol=1e-4)


def test_segment_turn_rules():
    T, F = True, False
    # user speaks (frames 1-3), the reply runs 5-8 and ends; frames 9-10 start the next turn
    seg = segment_turn([F, T, T, T, F, F, F, F, F, T, T], [F, F, F, F, F, T, T, T, T, F, F], 2)
    assert (seg.user, seg.reply, seg.carry_from) == ((1, 4), (5, 9), 9)
    # a barge-in: the reply (2-9) is cut while the user speaks (6-9, a one-frame pause at 8)
    seg = segment_turn([T, T, F, F, F, F, T, T, F, T], [F, F, T, T, T, T, T, T, T, T], 2)
    assert (seg.user, seg.reply, seg.carry_from) == ((0, 2), (2, 10), 6)
    # a cough long before the cut is not carried over
    seg = segment_turn([T, F, F, T, F, F, F, F], [F, T, T, T, T, T, T, T], 2)
    assert seg.carry_from == 8
    # no reply, no voicing: the whole window is the user part, nothing carried
    seg = segment_turn([F, F, F], [F, F, F], 2)
    assert (seg.user, seg.reply, seg.carry_from) == ((0, 3), (3, 3), 3)


def test_missing_checkpoints_name_the_folder_and_the_make_target(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no codec checkpoint in .*make train-codec"):
        ModelEngine(tmp_path / "empty")
    shutil.copytree(checkpoints / "codec", tmp_path / "codec")
    shutil.copytree(checkpoints / "speaker", tmp_path / "speaker")
    with pytest.raises(FileNotFoundError, match=r"no s2s checkpoint in .*s2s.*make train-s2s"):
        ModelEngine(tmp_path)
    engine = ModelEngine(tmp_path, s2s_dir=checkpoints / "s2s", max_slots=1)  # folders one by one
    assert engine.speakers


def test_the_engine_does_not_import_lightning(checkpoints):
    code = (
        "import sys, numpy as np\n"
        "from telugu_s2s.serving.engine import ModelEngine\n"
        "from telugu_s2s.serving.engine_api import SlotConfig\n"
        f"engine = ModelEngine({str(checkpoints)!r}, max_slots=1)\n"
        "slot = engine.join(SlotConfig('ravi'))\n"
        "engine.step({slot: np.zeros(1280, np.float32)})\n"
        "engine.end_turn(slot)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_real_server_replies_to_a_held_out_utterance(checkpoints, speech):
    """Random weights talk from their second frame on, so the held-out utterance barges in:
    the reply that was playing is cut (`interrupted`, reason vad, then its `turn` with the
    analysis heads' labels), the engine listens, and it talks again once the user is done."""
    engine = ModelEngine(checkpoints, max_slots=2, seed=0)
    settings = ServerSettings(store_url=":memory:", stats_interval_s=0)
    with running_server(engine, settings) as (url, _):

        async def scenario() -> tuple[S2SClient, float]:
            async with S2SClient(url, "priya", "stream") as client:
                await client.stream(np.concatenate([silence(1.0), speech["question"]]))
                speech_sent = client.now()
                await client.stream(silence(1.5))
                await client.wait_for(lambda e: e["type"] == "turn", 30)
                for _ in range(100):  # the reply after the utterance (the engine was listening)
                    if any(e["kind"] == "audio" and e["t"] > speech_sent for e in client.timeline):
                        break
                    await client.stream(silence(0.08))
                return client, speech_sent

        client, speech_sent = asyncio.run(scenario())
    kinds = [e.get("type", e["kind"]) for e in client.timeline]
    assert kinds.index("interrupted") < kinds.index("turn")
    cut = next(e for e in client.events if e["type"] == "interrupted")
    turn = next(e for e in client.events if e["type"] == "turn")
    assert cut["reason"] == "vad" and turn["interrupted"]
    assert turn["topic"] in TOPICS and turn["emotion"] in EMOTIONS and -1 <= turn["sentiment"] <= 1
    turn_at = next(e["t"] for e in client.timeline if e.get("type") == "turn")
    before = [e for e in client.timeline if e["kind"] == "audio" and e["t"] <= turn_at]
    reply = client.audio()[: sum(e["samples"] for e in before)]
    assert reply.shape[0] >= 4 * FRAME and np.sqrt(np.mean(reply**2)) > 0.01  # not silent
    first_audio = min(e["t"] for e in client.timeline if e["kind"] == "audio")
    last_sent = max(e["t"] for e in client.timeline if e["kind"] == "sent")
    assert first_audio < last_sent  # the reply played while the microphone streamed
    assert any(e["kind"] == "audio" and e["t"] > speech_sent for e in client.timeline)


def test_only_joined_sessions_are_stepped(checkpoints):
    engine = ModelEngine(checkpoints, max_slots=8)
    slots = [engine.join(config(name, np.zeros(S2S.d_model, np.float32))) for name in "abc"]
    silent = np.zeros(FRAME, np.float32)
    engine.step(dict.fromkeys(slots, silent))
    engine.step({slots[1]: silent})  # one session catching up: its row alone
    engine.leave(slots[0])
    engine.step(dict.fromkeys(slots[1:], silent))
    assert engine.stepped_rows == [3, 1, 2]  # never the 8 slots, never a free one
    assert engine.generator.batch_size == 2 and engine.rows == slots[1:]


# Per tick, which sessions step how many frames: b skips ticks (turn mode was quiet), c takes
# two frames on some (catching up); a joins late and b leaves early. 44 ticks wrap the
# 32-frame KV ring, so a ring that skipped a step must have been realigned.
def frames_per_tick(name: str, tick: int) -> int:
    if name == "a":
        return int(tick >= 5)
    if name == "b":
        return int(tick < 30 and tick % 3 != 1)
    return 2 if tick % 7 == 3 else 1


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_sessions_joining_leaving_and_skipping_leave_the_others_unchanged(checkpoints, guidance):
    memory = np.random.default_rng(0).standard_normal(S2S.d_model).astype(np.float32)
    engine = ModelEngine(checkpoints, max_slots=4, speaker_guidance=guidance)
    inputs = {n: frames_of(user_audio(s["seed"], 60)) for n, s in SESSIONS.items()}
    slots: dict[str, int] = {}
    batched: dict[str, list[StepResult]] = {n: [] for n in SESSIONS}
    for tick in range(44):
        counts = {n: frames_per_tick(n, tick) for n in SESSIONS}
        for name in SESSIONS:
            if counts[name] and name not in slots and not batched[name]:
                slots[name] = engine.join(config(name, memory))
            if not counts[name] and name in slots and name == "b" and tick >= 30:
                engine.leave(slots.pop(name))
        for k in range(2):  # the worker's sub-steps: the second only for those catching up
            names = [n for n in slots if counts[n] > k]
            frames = {slots[n]: inputs[n][len(batched[n])] for n in names}
            results = engine.step(frames)
            for name in names:
                batched[name].append(results[slots[name]])
    assert 1 in engine.stepped_rows and 2 in engine.stepped_rows  # subsets really ran
    for name in SESSIONS:
        alone = ModelEngine(checkpoints, max_slots=1, speaker_guidance=guidance)
        slot = alone.join(config(name, memory))
        single = [alone.step({slot: frame})[slot] for frame in inputs[name][: len(batched[name])]]
        for t, (one, many) in enumerate(zip(single, batched[name], strict=True)):
            where = f"session {name}, frame {t}"
            assert (many.speaking, many.assistant_text, many.user_text) == (
                one.speaking, one.assistant_text, one.user_text,
            ), where  # fmt: skip
            np.testing.assert_allclose(many.audio, one.audio, atol=1e-4, err_msg=where)


def test_hold_keeps_a_slot_silent_until_released(checkpoints):
    engine = ModelEngine(checkpoints, max_slots=2, release_quiet_frames=3)
    slot = engine.join(SlotConfig("priya", temperature=0.0))
    engine.hold(slot)
    speech, quiet = frames_of(user_audio(5, 6)), frames_of(np.zeros(8 * FRAME, np.float32))
    held = [engine.step({slot: f})[slot] for f in speech + quiet]
    assert not any(r.speaking or r.assistant_text for r in held)  # a pause does not free it
    engine.hold(slot, False)
    reply = [engine.step({slot: f})[slot] for f in quiet[:3]]
    assert all(r.speaking for r in reply)  # random weights talk as soon as they may


def test_the_streams_silence_reaches_the_model_as_its_own_silence(tmp_path):
    """A running encoder settles on other codes in silence than the fresh-state frame the
    token timelines put between utterances, and a noise floor encodes as neither: the
    engine hands the model the latter. (The committed codec: a random one gives noise the
    codes of silence.)"""
    export_checkpoints(tmp_path)
    shutil.rmtree(tmp_path / "codec")
    shutil.copytree(REPO_ROOT / "checkpoints" / "codec", tmp_path / "codec")
    engine = ModelEngine(tmp_path, max_slots=1)
    model_silence = engine.model.silence_codes.clone()
    codec = load_pretrained(tmp_path / "codec")
    with torch.no_grad():  # what 8 frames of zeros settle on: not the model's silence
        settled = codec.encode(torch.zeros(1, 1, 8 * FRAME))[0, : engine.num_codebooks, -1]
    assert not torch.equal(settled, model_silence)
    seen: list[torch.Tensor] = []
    step = engine.generator.step
    engine.generator.step = lambda codes, *a, **k: (
        seen.append(codes[0].clone()) or step(codes, *a, **k)
    )
    floor = 0.001 * np.random.default_rng(0).standard_normal(12 * FRAME).astype(np.float32)
    for quiet in (np.zeros(12 * FRAME, np.float32), floor):  # digital silence, a noise floor
        seen.clear()
        slot = engine.join(SlotConfig("ravi", temperature=0.0))
        for frame in frames_of(np.concatenate([user_audio(1, 6), quiet])):
            engine.step({slot: frame})
        engine.leave(slot)
        assert not any(torch.equal(codes, model_silence) for codes in seen[:6])  # speech stays
        assert all(torch.equal(codes, model_silence) for codes in seen[6 + 4 :])  # silence
    engine.close()


def test_a_plan_is_said_across_joins_and_steps_of_some_slots(checkpoints):
    """`set_plan` (server.replies: planner): the slot says the plan, character by character,
    while another session joins (the batch is re-laid out) and ticks step it alone (a subset)."""
    engine = ModelEngine(checkpoints, max_slots=3)
    slot = engine.join(SlotConfig("priya", temperature=0.0))
    plan = "రవి గారు బాగున్నారా"
    quiet, other, said = frames_of(np.zeros(44 * FRAME, np.float32)), None, []
    for t, frame in enumerate(quiet):
        if t == 4:
            other = engine.join(SlotConfig("ravi", temperature=0.0))
        if t == 6:  # past the first frames, whose text has no audio yet
            engine.set_plan(slot, plan)
        frames = {slot: frame} if other is None or t % 3 == 0 else {slot: frame, other: frame}
        text = engine.step(frames)[slot].assistant_text
        said.append(text if t >= 6 else "")
    assert 1 in engine.stepped_rows  # some ticks stepped the planned slot alone
    text = "".join(said).strip()
    assert len(text) > 5 and plan.startswith(text)  # random weights talk: the plan, in order
