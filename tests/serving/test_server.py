"""Acceptance tests against a real server (uvicorn on a free port) around the fake engine.

Speech is real Telugu (espeak-ng, held-out user voices) so that silero-vad fires on it; the
fake engine replies with a tone. Assertions are about order and content, never timing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import numpy as np

from telugu_s2s.client import S2SClient, run_file
from telugu_s2s.serving.metrics import COMPONENTS
from telugu_s2s.serving.server import ServerSettings
from tests.serving.conftest import silence
from tests.serving.fakes import REPLY_TEXT, FakeEngine, running_server, tone

FRAME = 1280


def settings(**overrides) -> ServerSettings:
    return ServerSettings(store_url=":memory:", **overrides)


def http(url: str) -> str:
    return url.replace("ws://", "http://")


def speech_engine(**kw) -> FakeEngine:
    # espeak pauses between words last up to ~300 ms: wait longer before "replying"
    return FakeEngine(reply_after_frames=6, **kw)


def audio_between(client: S2SClient, start: float, end: float) -> int:
    return sum(
        e["samples"] for e in client.timeline if e["kind"] == "audio" and start < e["t"] <= end
    )


def audio_before(client: S2SClient, t: float) -> np.ndarray:
    received = sum(e["samples"] for e in client.timeline if e["kind"] == "audio" and e["t"] <= t)
    return client.audio()[:received]


def test_stream_mode_replies_while_input_is_still_arriving(speech, tmp_path):
    engine = speech_engine(reply_frames=12)
    with running_server(engine, settings()) as (url, _):
        client = asyncio.run(run_file(speech["question"], url, "lakshmi", "stream", tail_s=20))
        client.save(tmp_path / "reply.wav", tmp_path / "events.json")
        stats = httpx.get(http(url) + "/stats").json()
        metrics = httpx.get(http(url) + "/metrics").text
        info = httpx.get(http(url) + f"/sessions/{client.ready['session']}").json()
        health = httpx.get(http(url) + "/health").json()
        index = httpx.get(http(url) + "/")
        missing = httpx.get(http(url) + "/sessions/nobody")

    assert client.ready["speaker"] == "lakshmi" and client.ready["mode"] == "stream"
    assert engine.calls[0][0] == "join" and engine.calls[0][2].speaker == "lakshmi"
    reply = client.audio()
    assert reply.shape[0] == 12 * FRAME and np.sqrt(np.mean(reply**2)) > 0.1  # not silent
    turn = next(e for e in client.events if e["type"] == "turn")
    assert {"sentiment", "topic", "emotion"} <= set(turn) and turn["topic"] == "greetings"
    assert turn["assistant_text"] == REPLY_TEXT[:12] and not turn["interrupted"]
    first_audio = min(e["t"] for e in client.timeline if e["kind"] == "audio")
    last_sent = max(e["t"] for e in client.timeline if e["kind"] == "sent")
    assert first_audio < last_sent  # full duplex: the reply plays while the mic still streams
    texts = [e for e in client.events if e["type"] == "text"]
    assert any(e["role"] == "user" for e in texts) and any(e["role"] == "assistant" for e in texts)
    assert (tmp_path / "reply.wav").stat().st_size > 12 * FRAME * 2
    assert '"kind": "audio"' in (tmp_path / "events.json").read_text()

    assert stats["sessions"]["total"] == 1 and stats["frames"] > 40
    for component in COMPONENTS:
        assert {"p50", "p95"} <= set(stats["latency_ms"][component]), component
    assert 'telugu_s2s_latency_seconds_bucket{component="s2s",le="0.08"}' in metrics
    assert "telugu_s2s_sessions_total 1.0" in metrics
    assert info["preferences"]["speaker"] == "lakshmi" and len(info["turns"]) == 1
    assert info["analysis"]["turns"] == 1 and info["analysis"]["top_emotion"] == "happy"
    assert health["status"] == "ok" and index.status_code == 200 and "web UI" in index.text
    assert missing.status_code == 404


def test_turn_mode_waits_for_the_end_of_the_utterance(speech):
    engine = speech_engine(reply_frames=10)
    with running_server(engine, settings()) as (url, _):

        async def scenario():
            async with S2SClient(url, "ravi", "turn") as client:
                await client.stream(np.concatenate([speech["question"], silence(0.3)]))
                speech_sent = client.now()
                idle_steps = engine.frames_by_slot[0]
                turn = await client.wait_for(lambda e: e["type"] == "turn", 20)
                await client.send_json({"type": "config", "mode": "stream"})  # switch modes
                mark = len(client.timeline)
                await client.stream(np.concatenate([tone(500, 0.4), silence(0.8)]), realtime=False)
                second = await client.wait_for(lambda e: e["type"] == "turn", 20, after=mark)
                return client, speech_sent, idle_steps, turn, second

        client, speech_sent, idle_steps, turn, second = asyncio.run(scenario())
        info = httpx.get(http(url) + f"/sessions/{client.ready['session']}").json()

    assert second["index"] == 2 and info["preferences"]["mode"] == "stream"
    assert idle_steps == 0  # while the user speaks, turn mode does not run the model
    first_audio = min(e["t"] for e in client.timeline if e["kind"] == "audio")
    assert first_audio > speech_sent  # the reply starts only after the utterance is over
    assert turn["assistant_text"] == REPLY_TEXT[:10] and client.audio().shape[0] == 20 * FRAME
    utterance_frames = len(speech["question"]) // FRAME
    assert engine.frames_by_slot[0] >= utterance_frames  # the whole utterance was in context
    assert max(engine.batch_sizes) > 1 or engine.frames_by_slot[0] > utterance_frames


def test_barge_in_by_voice_cuts_cleanly_and_keeps_only_what_was_heard(speech):
    engine = speech_engine(reply_frames=60)
    with running_server(engine, settings()) as (url, _):

        async def scenario():
            async with S2SClient(url, "priya", "stream") as client:
                await client.stream(np.concatenate([speech["question"], silence(0.4)]))
                await client.wait_audio(6 * FRAME, 20)
                await client.stream(speech["barge"])  # the user talks over the assistant
                barge_sent = client.now()
                cut = await client.wait_for(lambda e: e["type"] == "interrupted", 10)
                turn = await client.wait_for(lambda e: e["type"] == "turn", 10)
                return client, barge_sent, cut, turn

        client, barge_sent, cut, turn = asyncio.run(scenario())
        stats = httpx.get(http(url) + "/stats").json()
        session = httpx.get(http(url) + f"/sessions/{client.ready['session']}").json()

    assert cut["reason"] == "vad" and cut["delay_ms"] > 0
    assert audio_between(client, cut["t"], barge_sent) <= FRAME  # at most one frame after
    heard = audio_before(client, cut["t"])
    assert heard.shape[0] >= 6 * FRAME
    assert np.abs(heard[-80:]).max() < 0.01  # the last 5 ms before the cut: below 1% FS
    assert np.abs(np.diff(heard)).max() < 0.2  # and no click on the way down
    heard_frames = round(heard.shape[0] / FRAME)
    assert turn["interrupted"] and turn["assistant_text"] == REPLY_TEXT[:heard_frames]
    assert turn["heard_ms"] == cut["heard_ms"]
    # The model's context too (its first turn: the barge-in utterance ends in a turn of its own)
    assert engine.slot(0).context[0][1] == REPLY_TEXT[:heard_frames]
    assert ("silence", 0) in [(c[0], c[1]) for c in engine.calls]
    assert stats["interruptions"]["by_reason"] == {"vad": 1}
    assert stats["interruptions"]["delay_ms"]["count"] == 1
    assert session["turns"][0]["interrupted"] and session["analysis"]["interrupted"] == 1
    assert session["live"]["active"] is False


def test_a_short_burst_pauses_then_resumes_the_reply(speech):
    engine = speech_engine(reply_frames=40)
    with running_server(engine, settings(min_interruption_ms=480)) as (url, _):

        async def scenario():
            async with S2SClient(url, "arjun", "stream") as client:
                await client.stream(np.concatenate([speech["question"], silence(0.4)]))
                await client.wait_audio(6 * FRAME, 20)
                await client.stream(np.concatenate([speech["cough"], silence(0.8)]))
                turn = await client.wait_for(lambda e: e["type"] == "turn", 20)
                return client, turn

        client, turn = asyncio.run(scenario())
        stats = httpx.get(http(url) + "/stats").json()

    assert not any(e["type"] == "interrupted" for e in client.events)
    assert stats["interruptions"]["false_interruptions"] == 1  # the burst did pause the reply
    assert not turn["interrupted"] and turn["assistant_text"] == REPLY_TEXT[:40]
    assert client.audio().shape[0] == 40 * FRAME  # every frame of the reply arrived
    assert np.abs(np.diff(client.audio())).max() < 0.2  # paused and resumed without clicks


class EnergyVAD:
    """A VAD that calls a frame voiced when it is loud: the test decides every frame."""

    def warmup(self) -> None:
        pass

    def __call__(self, frames, states) -> list[float]:
        return [float(np.sqrt(np.mean(np.square(f))) > 0.05) for f in frames]


def test_a_dip_in_the_first_frames_of_speech_keeps_the_reply_paused():
    engine = FakeEngine(reply_frames=60, speech_rms=0.05)
    with running_server(engine, settings(min_interruption_ms=480), vad=EnergyVAD()) as (url, _):

        async def scenario():
            async with S2SClient(url, "ravi", "stream") as client:
                await client.stream(np.concatenate([tone(440, 0.4), silence(0.4)]))
                await client.wait_audio(6 * FRAME, 20)
                mark = len(client.timeline)
                # Voiced, one unvoiced frame (the VAD dips inside a word), then voiced on.
                await client.stream(
                    np.concatenate([tone(300, 0.08), silence(0.08), tone(300, 0.8)])
                )
                onset = next(e["t"] for e in client.timeline[mark:] if e["kind"] == "sent")
                cut = await client.wait_for(lambda e: e["type"] == "interrupted", 10)
                return client, onset, cut

        client, onset, cut = asyncio.run(scenario())
    assert cut["reason"] == "vad"
    # Paused on the first voiced frame and never resumed: at most the frame in flight arrives.
    assert audio_between(client, onset, cut["t"]) <= FRAME


def test_manual_interrupt(speech):
    engine = FakeEngine(reply_frames=60)
    with running_server(engine, settings(), vad=None) as (url, _):

        async def scenario():
            async with S2SClient(url, "priya", "stream") as client:
                await client.stream(np.concatenate([tone(440, 0.4), silence(0.3)]), realtime=False)
                await client.wait_audio(5 * FRAME, 20)
                await client.send_json({"type": "interrupt"})
                cut = await client.wait_for(lambda e: e["type"] == "interrupted", 10)
                turn = await client.wait_for(lambda e: e["type"] == "turn", 10)
                await asyncio.sleep(0.5)  # anything still coming would arrive now
                return client, cut, turn

        client, cut, turn = asyncio.run(scenario())
        stats = httpx.get(http(url) + "/stats").json()

    assert cut["reason"] == "manual"
    after = sum(e["samples"] for e in client.timeline if e["kind"] == "audio" and e["t"] > cut["t"])
    assert after <= FRAME
    heard = audio_before(client, cut["t"])
    assert np.abs(heard[-80:]).max() < 0.01
    assert (
        turn["interrupted"]
        and turn["assistant_text"] == REPLY_TEXT[: round(heard.shape[0] / FRAME)]
    )
    assert stats["interruptions"]["by_reason"] == {"manual": 1}


def test_bad_input_gets_error_events_and_the_connection_keeps_serving():
    engine = FakeEngine(reply_frames=3, reply_after_frames=2)
    with running_server(engine, settings(max_message_bytes=64 * 1024), vad=None) as (url, _):

        async def scenario():
            async with S2SClient(url, "nobody", "sideways") as client:
                await client.wait_for(lambda e: e.get("code") == "bad_mode", 5)
                codes = [e["code"] for e in client.events if e["type"] == "error"]
                before = dict(client.ready)
                session = client.ready["session"]
                bad = [
                    b"\x01\x02\x03",  # odd-length binary
                    "this is not json",
                    '{"type": "dance"}',
                    np.zeros(40000, np.float32),  # 80 KB: over the 64 KB limit
                    "{" + " " * 70000 + "}",  # oversized text
                    '{"type": "config", "speaker": "nobody"}',
                    '{"type": "config", "mode": "telepathy"}',
                    '{"type": "config", "speaker": "ravi", "vad_threshold": 7}',  # nothing applies
                ]
                for message in bad:
                    if isinstance(message, str):
                        await client.send_json(message)
                    else:
                        await client.send_audio(message)
                await client.wait_for(
                    lambda e: e["type"] == "error" and "vad_threshold" in e["message"], 10
                )
                errors = [e["code"] for e in client.events if e["type"] == "error"]
                async with S2SClient(url, session=session) as twin:  # one connection per session
                    refused = twin.ready
                await client.stream(np.concatenate([tone(500, 0.3), silence(0.2)]), realtime=False)
                turn = await client.wait_for(lambda e: e["type"] == "turn", 20)
                return before, codes, errors, session, turn, refused

        before, first_codes, errors, session, turn, refused = asyncio.run(scenario())
        info = httpx.get(http(url) + f"/sessions/{session}").json()
        health = httpx.get(http(url) + "/health").json()

    assert before["type"] == "ready" and before["speaker"] == "priya" and before["mode"] == "stream"
    assert first_codes[:2] == ["unknown_speaker", "bad_mode"]
    assert errors[2:] == ["bad_audio", "bad_json", "unknown_type", "too_large", "too_large",
                          "unknown_speaker", "bad_mode", "bad_config"]  # fmt: skip
    assert turn["type"] == "turn" and turn["index"] == 1  # still serving after all that
    assert refused["type"] == "error" and refused["code"] == "session_busy"
    assert info["preferences"]["speaker"] == "priya"  # the rejected config changed nothing
    assert health["status"] == "ok"


def test_a_full_engine_refuses_new_sessions_and_keeps_serving_the_open_one():
    engine = FakeEngine(reply_frames=3, reply_after_frames=2, max_slots=1)
    with running_server(engine, settings(), vad=None) as (url, _):

        async def scenario():
            async with S2SClient(url, "arjun") as first:
                async with S2SClient(url, "ravi") as second:
                    refused = second.ready
                await first.stream(np.concatenate([tone(500, 0.3), silence(0.2)]), realtime=False)
                turn = await first.wait_for(lambda e: e["type"] == "turn", 20)
            for _ in range(50):  # the slot frees once the server has seen the first one leave
                async with S2SClient(url, "ravi") as third:
                    if third.ready["type"] == "ready":
                        break
                await asyncio.sleep(0.1)
            return refused, turn, third.ready

        refused, turn, later = asyncio.run(scenario())
        health = httpx.get(http(url) + "/health").json()

    assert refused["type"] == "error" and refused["code"] == "server_busy"
    assert turn["type"] == "turn"
    assert later["type"] == "ready" and later["speaker"] == "ravi"
    assert health["status"] == "ok"


def test_config_and_style_adaptation_and_batching():
    engine = FakeEngine(reply_frames=2, reply_after_frames=2)
    with running_server(engine, settings(), vad=None) as (url, _):

        async def scenario():
            async with (
                S2SClient(url, "priya", "stream") as a,
                S2SClient(url, "ravi", "stream") as b,
            ):
                await a.send_json(
                    {"type": "config", "speaker": "arjun", "style": "casual", "vad_threshold": 0.3}
                )
                await a.stream(
                    np.concatenate([tone(200, 0.3), silence(0.2)]), realtime=False
                )  # sad
                turn = await a.wait_for(lambda e: e["type"] == "turn", 20)
                await b.stream(np.concatenate([tone(600, 0.3), silence(0.2)]), realtime=False)
                await b.wait_for(lambda e: e["type"] == "turn", 20)
                return a.ready["session"], turn

        session, turn = asyncio.run(scenario())
        info = httpx.get(http(url) + f"/sessions/{session}").json()

    configures = [c[2] for c in engine.calls if c[0] == "configure" and c[1] == 0]
    assert configures[0] == {"speaker": "arjun", "style": "casual"}  # the preference applies
    assert turn["sentiment"] < 0 and configures[-1] == {
        "style": "formal"
    }  # calmer after a sad turn
    assert info["preferences"] == {
        "speaker": "arjun",
        "mode": "stream",
        "style": "casual",
        "vad_threshold": 0.3,
    }
    assert max(engine.batch_sizes) == 2  # both sessions stepped in one batch


def test_the_server_does_not_import_lightning():
    code = ("import sys, telugu_s2s.serving.server, telugu_s2s.serving.vad, telugu_s2s.serve; "
            "print(sorted(m for m in sys.modules if 'lightning' in m))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
