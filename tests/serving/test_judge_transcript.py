"""`server.user_transcript: judge`: the recognizer transcribes each turn's buffered user audio
off the tick thread; the final user text and the turn go out once it has, in order, and the
reply audio keeps flowing meanwhile. A missing export fails at startup with a clear error."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

from telugu_s2s.asr import Judge
from telugu_s2s.checkpoint import save_pretrained
from telugu_s2s.client import S2SClient
from telugu_s2s.models.asr import AsrConfig, AsrModel
from telugu_s2s.serving.server import ServerSettings, create_app
from tests.serving.fakes import FakeEngine, running_server

FRAME = 1280
TINY = AsrConfig(conv_channels=32, hidden=32, layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(AsrModel(TINY), tmp_path_factory.mktemp("asr") / "asr")


class GatedJudge:
    """The tiny random recognizer behind a gate: it records every clip and the thread it ran
    on, and sleeps until the test opens the gate (a judge slower than the whole reply)."""

    def __init__(self, judge: Judge):
        self.judge = judge
        self.gate = threading.Event()
        self.clips: list[np.ndarray] = []
        self.threads: list[str] = []

    def transcribe(self, clips, sample_rate=None):
        self.clips.extend(np.array(c) for c in clips)
        self.threads.append(threading.current_thread().name)
        self.gate.wait(timeout=60)
        return self.judge.transcribe(clips, sample_rate)


def settings(asr_dir, **overrides) -> ServerSettings:
    return ServerSettings(store_url=":memory:", stats_interval_s=0, user_transcript="judge",
                          asr_dir=str(asr_dir), **overrides)  # fmt: skip


def pcm16(audio: np.ndarray) -> np.ndarray:
    """What the server decodes from what the client sends."""
    return np.round(np.clip(audio, -1.0, 1.0 - 1 / 32768) * 32768).astype(np.float32) / 32768


def padded(audio: np.ndarray) -> np.ndarray:
    """To whole frames: the server holds a partial frame until more audio comes."""
    return np.concatenate([audio, np.zeros(-audio.shape[0] % FRAME, np.float32)])


def contains(clip: np.ndarray, speech: np.ndarray) -> bool:
    """`speech` (from its first to its last loud sample) lies in `clip`, sample for sample."""
    loud = np.flatnonzero(np.abs(speech) > 0.05)
    core = speech[loud[0] : loud[-1] + 1]
    for start in np.flatnonzero(clip == core[0]):
        if np.array_equal(clip[start : start + core.shape[0]], core):
            return True
    return False


def test_judge_transcripts_go_out_in_order_while_the_replies_keep_playing(speech, asr_dir):
    engine = FakeEngine(reply_frames=30, reply_after_frames=6)
    judge = GatedJudge(Judge.load(asr_dir))
    with running_server(engine, settings(asr_dir), judge=judge) as (url, _):

        async def scenario() -> tuple[S2SClient, int]:
            async with S2SClient(url, "priya", "stream") as client:
                await client.stream(padded(speech["question"]))  # the first utterance, at once
                await client.wait_audio(30 * FRAME, 20)  # its whole reply
                await client.stream(padded(speech["barge"]))
                await client.wait_audio(60 * FRAME, 20)  # the second reply, judge still asleep
                await asyncio.sleep(0.5)  # the second turn has closed (its reply ended)
                turns_while_asleep = sum(e["type"] == "turn" for e in client.events)
                judge.gate.set()
                await client.wait_for(lambda e: e["type"] == "turn" and e["index"] == 2, 20)
                return client, turns_while_asleep

        client, turns_while_asleep = asyncio.run(scenario())

    assert turns_while_asleep == 0  # both turns wait for their transcripts ...
    assert client.audio().shape[0] == 60 * FRAME  # ... but not the replies' audio
    assert all(name.startswith("judge") for name in judge.threads)  # not the engine's thread
    finals = [(e["type"], e.get("role"), e.get("index")) for e in client.events
              if e["type"] == "turn" or (e["type"] == "text" and e["final"])]  # fmt: skip
    assert finals == [("text", "user", None), ("text", "assistant", None), ("turn", None, 1),
                      ("text", "user", None), ("text", "assistant", None), ("turn", None, 2)]  # fmt: skip
    assert not any(e["type"] == "text" and e["role"] == "user" and not e["final"]
                   for e in client.events)  # the S2S stream's pieces are not this transcript  # fmt: skip
    assert len(judge.clips) == 2
    assert contains(judge.clips[0], pcm16(speech["question"]))
    assert contains(judge.clips[1], pcm16(speech["barge"]))
    assert not contains(judge.clips[0], pcm16(speech["barge"]))
    expected = Judge.load(asr_dir).transcribe(judge.clips)
    turns = [e for e in client.events if e["type"] == "turn"]
    users = [e["text"] for e in client.events if e["type"] == "text" and e["role"] == "user"]
    assert [t["user_text"] for t in turns] == users == expected
    # and the engine's memory entries of those turns get the same transcripts
    assert engine.turn_texts == [(0, 0, expected[0]), (0, 1, expected[1])]


class FailingJudge:
    def transcribe(self, clips, sample_rate=None):
        raise RuntimeError("the recognizer broke")


def test_a_failing_judge_keeps_the_model_transcript_and_the_session(speech, asr_dir):
    engine = FakeEngine(reply_frames=5, reply_after_frames=6)
    with running_server(engine, settings(asr_dir), judge=FailingJudge()) as (url, app):

        async def scenario() -> dict:
            async with S2SClient(url, "ravi", "stream") as client:
                await client.stream(speech["question"])
                return await client.wait_for(lambda e: e["type"] == "turn", 20)

        turn = asyncio.run(scenario())
        errors = dict(app.state.hub.errors)
    assert turn["user_text"].startswith("<")  # the fake engine's own transcript
    assert errors.get("judge_error") == 1


def test_judge_mode_without_a_recognizer_export_fails_at_startup(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoints|make train-asr"):
        create_app(FakeEngine(), settings(tmp_path / "no_asr"), vad=None)
    bad = ServerSettings(store_url=":memory:", user_transcript="whisper")
    with pytest.raises(ValueError, match="user_transcript"):
        create_app(FakeEngine(), bad, vad=None)


def test_serve_yaml_defaults_to_the_judge_transcript_text_topics_planner_and_their_exports():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import telugu_s2s.serve  # noqa: F401 - registers the ${repo_root:} resolver
    from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("serve")
    server = ServerSettings.from_dict(OmegaConf.to_container(cfg.server, resolve=True))
    assert server.user_transcript == "judge"
    assert server.asr_dir == str(REPO_ROOT / "checkpoints" / "asr")
    assert (REPO_ROOT / "checkpoints" / "asr" / "model.safetensors").is_file()
    # the session's topic from those transcripts (tests/serving/test_session_topic.py)
    from telugu_s2s.text_topics import NaiveBayesTopics

    assert server.dialog_topic == "text"
    assert server.text_topics_dir == str(REPO_ROOT / "checkpoints" / "text_topics")
    assert NaiveBayesTopics.load(server.text_topics_dir).examples > 1000
    # and the replies from the reply planner (tests/serving/test_planned_replies.py)
    from telugu_s2s.reply_planner import ReplyPlanner

    assert server.replies == "planner"
    assert server.reply_planner_dir == str(REPO_ROOT / "checkpoints" / "reply_planner")
    assert ReplyPlanner.load(server.reply_planner_dir).num_states > 500  # 825 (session 20)
