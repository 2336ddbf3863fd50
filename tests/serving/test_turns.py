"""Every user utterance ends in a final user `text` event and then a `turn` event, in both
modes, for the very first utterance of a session, for a short one (~0.5 s), for one the
engine never answers and for one that barged in over a reply.

Speech is real Telugu (espeak-ng, held-out user voices) so that silero-vad endpoints it as
it would a user. The fake engines here answer only the utterances their script says; the
model engine runs the committed checkpoints.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from telugu_s2s.client import S2SClient
from telugu_s2s.data.voices import load_synth_config, render, voices_from_config
from telugu_s2s.serving.server import ServerSettings, TurnSettings
from tests.serving.conftest import silence
from tests.serving.fakes import FakeEngine, FakeSlot, running_server

FRAME = 1280


class ScriptedFake(FakeEngine):
    """The fake engine, answering only the utterances whose entry in `answers` is True
    (one entry per utterance it detects; True once the script runs out). It still
    transcribes the ones it does not answer."""

    def __init__(self, answers: list[bool], **kw):
        kw.setdefault("reply_after_frames", 6)  # espeak's pauses between words: up to ~300 ms
        super().__init__(**kw)
        self.answers = list(answers)

    def _step_one(self, s: FakeSlot, frame: np.ndarray):
        was_speaking = s.speaking
        result = super()._step_one(s, frame)
        if s.speaking and not was_speaking and not (self.answers.pop(0) if self.answers else True):
            s.speaking = False  # heard and transcribed, left unanswered
        return result


class LiveScriptedFake(ScriptedFake):
    """With `hold`: turn mode lets it hear the utterance live and releases it at the
    endpoint; an answer it decided on while held starts at the release."""

    def __init__(self, answers: list[bool], **kw):
        super().__init__(answers, **kw)
        self.held: set[int] = set()
        self.owed: set[int] = set()

    def hold(self, slot: int, silent: bool = True) -> None:
        self._check_thread()
        self.calls.append(("hold", slot, silent))
        s = self.slots[slot]
        if silent:
            self.held.add(slot)
            s.speaking = False
        else:
            self.held.discard(slot)
            if slot in self.owed:
                self.owed.discard(slot)
                s.speaking, s.position = True, 0

    def step(self, frames):
        results = super().step(frames)
        for slot in frames:
            s = self.slots[slot]
            if slot in self.held and s.speaking:  # decided to answer while held: owe it
                s.speaking = False
                self.owed.add(slot)
                results[slot].speaking, results[slot].audio = False, results[slot].audio * 0
                results[slot].assistant_text = ""
        return results


@pytest.fixture(scope="module")
def utterances(speech) -> dict[str, np.ndarray]:
    """The shared fixtures plus a short word and another sentence, in held-out voices."""
    voices = voices_from_config(load_synth_config())
    extra = {
        "short": ("సరే", "heldout_henrique"),  # 0.5 s
        "answer": ("నా పేరు సురేష్, మాది గుంటూరు", "heldout_belinda"),
    }
    return {**speech, **{name: render(text, voices[v])[0] for name, (text, v) in extra.items()}}


def settings(**overrides) -> ServerSettings:
    return ServerSettings(store_url=":memory:", stats_interval_s=0, **overrides)


def check_turns(client: S2SClient) -> list[dict]:
    """The turns, each checked to follow its final user text (same text) and to be numbered
    in order; a turn's final texts come between it and the previous turn."""
    turns, final_user = [], None
    for event in client.events:
        if event["type"] == "text" and event["role"] == "user" and event["final"]:
            assert final_user is None, "two final user texts for one turn"
            final_user = event
        elif event["type"] == "turn":
            assert final_user is not None, f"turn {event['index']} without a final user text"
            assert final_user["text"] == event["user_text"]
            turns.append(event)
            final_user = None
    assert [t["index"] for t in turns] == list(range(1, len(turns) + 1))
    return turns


async def wait_turns(client: S2SClient, count: int, timeout: float = 20.0) -> None:
    await client.wait_for(lambda e: e["type"] == "turn" and e["index"] == count, timeout)


def converse(engine: FakeEngine, speaker: str, mode: str,
             script: Callable[[S2SClient], Awaitable[None]]) -> list[dict]:  # fmt: skip
    """Run `script` as one client of a server around `engine`; the client's checked turns."""
    with running_server(engine, settings()) as (url, _):

        async def scenario() -> S2SClient:
            async with S2SClient(url, speaker, mode) as client:
                await script(client)
                return client

        client = asyncio.run(scenario())
    return check_turns(client)


def one_utterance(text: str) -> bool:
    return re.fullmatch(r"<\d+Hz>", text) is not None  # the fake's transcript of one utterance


def test_stream_mode_every_utterance_ends_in_a_turn(utterances):
    """First utterance at once; a short one the engine leaves unanswered, followed within the
    no-reply timeout by the next; one that barges in and is never answered."""
    engine = ScriptedFake([True, False, True, False], reply_frames=40)

    async def script(client: S2SClient) -> None:
        await client.stream(utterances["question"])  # the session's very first audio
        await wait_turns(client, 1)
        await client.stream(np.concatenate([utterances["short"], silence(1.5)]))
        await client.stream(utterances["answer"])
        await client.wait_audio(46 * FRAME, 20)  # the second reply is playing
        await client.stream(utterances["barge"])  # talk over it; left unanswered
        await wait_turns(client, 4)

    turns = converse(engine, "priya", "stream", script)
    assert len(turns) == 4
    assert all(one_utterance(t["user_text"]) for t in turns), [t["user_text"] for t in turns]
    assert [bool(t["assistant_text"]) for t in turns] == [True, False, True, False]
    assert [t["interrupted"] for t in turns] == [False, False, True, False]


@pytest.mark.parametrize("engine_class", [ScriptedFake, LiveScriptedFake])
def test_turn_mode_every_utterance_ends_in_a_turn(utterances, engine_class):
    """The buffered (no `hold`) and live (`hold`) turn modes: a first utterance at once, a
    short one, one left unanswered and then one spoken before the wait for its reply ends."""
    engine = engine_class([True, True, False, True], reply_frames=12)

    async def script(client: S2SClient) -> None:
        await client.stream(utterances["question"])
        await wait_turns(client, 1)
        await client.stream(utterances["short"])
        await wait_turns(client, 2)
        await client.stream(np.concatenate([utterances["answer"], silence(1.0)]))
        await client.stream(utterances["barge"])
        await wait_turns(client, 4)

    turns = converse(engine, "ravi", "turn", script)
    assert len(turns) == 4
    assert all(one_utterance(t["user_text"]) for t in turns), [t["user_text"] for t in turns]
    assert [bool(t["assistant_text"]) for t in turns] == [True, True, False, True]


# ---------------------------------------------------------------- the model engine


def committed_engine():
    from telugu_s2s.paths import CHECKPOINT_DIR
    from telugu_s2s.serving.engine import ModelEngine

    if not (CHECKPOINT_DIR / "s2s" / "config.json").is_file():
        pytest.skip("no committed S2S checkpoint")
    return ModelEngine(CHECKPOINT_DIR, max_slots=1, seed=0)


async def speak(client: S2SClient, utterances: list[np.ndarray], pause_s: float) -> list[float]:
    """As a user who does not wait for the assistant: each utterance, then `pause_s` of
    silence; returns when each utterance ended (client time). The microphone stays open
    until a turn has closed after the last one."""
    ends = []
    for audio in utterances:
        await client.stream(audio)
        ends.append(client.now())
        await client.stream(silence(pause_s))
    await client.wait_for(lambda e: e["type"] == "turn" and e["t"] > ends[-1], 30)
    return ends


def check_each_utterance_has_a_turn(client: S2SClient, ends: list[float]) -> list[dict]:
    """Each utterance has a turn of its own that closes after it ended and before the next
    one ended, or within the first second of the next one (it barged in on the reply)."""
    turns = check_turns(client)
    times = [t["t"] for t in turns]
    bounds = [end + 1.0 for end in ends[1:]] + [float("inf")]
    used = -1
    for i, (end, bound) in enumerate(zip(ends, bounds, strict=True)):
        match = next((k for k, t in enumerate(times) if k > used and end < t <= bound), None)
        assert match is not None, f"utterance {i + 1} ended at {end:.2f} s; turns at {times}"
        used = match
    return turns


@pytest.mark.parametrize("mode", ["stream", "turn"])
def test_the_model_engine_ends_every_utterance_in_a_turn(utterances, mode):
    """The committed checkpoints, whatever they say: a first utterance at once, a short one,
    and two more; each ends in a final user text and then a turn."""
    engine = committed_engine()
    # turn mode: a model that never answers is given 4 s, not 20 s
    config = settings(turn=TurnSettings(max_reply_frames=50))
    with running_server(engine, config) as (url, _):

        async def scenario() -> tuple[S2SClient, list[float]]:
            async with S2SClient(url, "lakshmi", mode) as client:
                order = ["question", "short", "answer", "barge"]
                ends = await speak(client, [utterances[name] for name in order], 2.0)
                return client, ends

        client, ends = asyncio.run(scenario())
    turns = check_each_utterance_has_a_turn(client, ends)
    assert len(turns) >= 4
