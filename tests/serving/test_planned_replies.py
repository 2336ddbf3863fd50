"""Planned replies (`server.replies: planner`): at the end of each user utterance the judge's
transcript and the reply planner choose the reply, the engine says it, and the turn events
carry it; a stale, late or failed plan never reaches the engine; bad settings fail at startup."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from telugu_s2s.client import S2SClient
from telugu_s2s.data.generate import GeneratorConfig, generate_dialogs
from telugu_s2s.reply_planner import SessionPlanner, fit
from telugu_s2s.serving.context import adapt_style
from telugu_s2s.serving.planning import ReplyPlanning
from telugu_s2s.serving.server import ServerSettings, create_app
from telugu_s2s.text_topics import SessionTopic
from tests.serving.fakes import FakeEngine, running_server
from tests.serving.test_judge_transcript import padded


@pytest.fixture(scope="module")
def planner_dir(tmp_path_factory):
    dialogs = [
        d for d in generate_dialogs(GeneratorConfig(dialogs=120, seed=3)) if d.split == "train"
    ]
    directory = tmp_path_factory.mktemp("planner")
    planner = fit(dialogs)
    planner.save(directory)
    return directory, planner, dialogs[0]


class TurnJudge:
    """The same transcript for both calls of a turn (planning at the utterance's end, the
    final transcript at the turn's close), then the next turn's."""

    def __init__(self, texts: list[str]):
        self.texts, self.calls = list(texts), 0

    def transcribe(self, clips, sample_rate=None):
        out = [self.texts[min(self.calls // 2, len(self.texts) - 1)] for _ in clips]
        self.calls += len(clips)
        return out


def test_the_planner_chooses_what_the_engine_says(speech, planner_dir, tmp_path):
    directory, planner, dialog = planner_dir
    said = [turn.user for turn in dialog.turns[:3]]
    engine = FakeEngine(reply_frames=400, reply_after_frames=12)  # it answers 1 s after speech
    settings = ServerSettings(store_url=f"sqlite:///{tmp_path / 's.db'}", stats_interval_s=0,
                              user_transcript="judge", replies="planner",
                              reply_planner_dir=str(directory))  # fmt: skip
    judge, session_id = TurnJudge(said), []
    with running_server(engine, settings, judge=judge) as (url, app):

        async def scenario() -> list[dict]:
            async with S2SClient(url, "priya", "stream") as client:
                session_id.append(client.ready["session"])
                for n in (1, 2, 3):
                    await client.stream(padded(speech["question"]))
                    await client.wait_for(
                        lambda e, n=n: e["type"] == "turn" and e["index"] == n, 30
                    )
                return [e for e in client.events if e["type"] == "turn"]

        turns = asyncio.run(scenario())
        errors = dict(app.state.hub.errors)
        stored = app.state.hub.store.load(session_id[0])
    # what the server should plan, in the style of each turn (no topic model here)
    styles = [adapt_style("auto", [])]  # the session's first style, then the engine's changes
    styles += [c[2]["style"] for c in engine.calls if c[0] == "configure" and "style" in c[2]]
    styles += [styles[-1]] * 3
    session = SessionPlanner(planner)
    expected = [session.reply(text, style).text for text, style in zip(said, styles, strict=False)]
    assert [t["user_text"] for t in turns] == said
    assert [t["assistant_text"] for t in turns] == expected
    assert "plan_late" not in errors and "plan_error" not in errors
    # the store keeps where the planner is, so that a resumed session plans on from there
    assert stored.aggregates.reply_plan == session.state()
    plans = [c for c in engine.calls if c[0] == "set_plan"]
    assert [c[2] for c in plans if c[2] is not None] == expected  # cleared at each new utterance


def test_replies_planner_needs_the_judge_and_its_export(tmp_path):
    with pytest.raises(ValueError, match="user_transcript=judge"):
        create_app(FakeEngine(), ServerSettings(store_url=":memory:", replies="planner"), vad=None)
    with pytest.raises(FileNotFoundError, match="make train-planner"):
        create_app(FakeEngine(), ServerSettings(store_url=":memory:", replies="planner",
                                                user_transcript="judge",
                                                reply_planner_dir=str(tmp_path)),
                   vad=None, judge=TurnJudge(["x"]))  # fmt: skip
    with pytest.raises(ValueError, match="server.replies"):
        create_app(FakeEngine(), ServerSettings(store_url=":memory:", replies="both"), vad=None)


class Recorder:
    def __init__(self):
        self.plans, self.errors = [], []

    async def set_plan(self, text):
        self.plans.append(text)


def planning(planner, transcribe, recorder: Recorder) -> ReplyPlanning:
    return ReplyPlanning(planner, transcribe, recorder.set_plan, SessionTopic(None),
                         recorder.errors.append)  # fmt: skip


def test_stale_late_and_failed_plans_never_reach_the_engine(planner_dir):
    _, planner, dialog = planner_dir
    audio = np.ones(1600, np.float32)
    first, second = dialog.turns[0].user, dialog.turns[1].user

    async def slow(text):
        await asyncio.sleep(0.05)
        return text

    async def scenario():
        recorder = Recorder()
        plans = planning(planner, lambda a: slow(first), recorder)
        plans.utterance_ended(audio, "formal", True, lambda: False)
        await plans.speech_started()  # the user goes on before the plan is ready: stale
        await asyncio.sleep(0.1)
        stale = list(recorder.plans)
        plans.utterance_ended(audio, "formal", True, lambda: True)  # the reply has begun: late
        await asyncio.sleep(0.1)
        late = list(recorder.plans), list(recorder.errors)

        async def broken(a):
            raise RuntimeError("the judge broke")

        failing = planning(planner, broken, recorder)
        failing.utterance_ended(audio, "formal", True, lambda: False)
        await asyncio.sleep(0.05)
        return stale, late, recorder

    stale, (late_plans, late_errors), recorder = asyncio.run(scenario())
    assert stale == [] and late_plans == [] and late_errors == ["plan_late"]
    assert recorder.errors == ["plan_late", "plan_error"] and recorder.plans == []

    async def replanned():
        recorder = Recorder()
        texts = iter([first, first + " " + second])

        async def judge(a):
            return next(texts)

        plans = planning(planner, judge, recorder)
        for _ in range(2):  # one turn, two utterances: planned twice from the same state
            plans.utterance_ended(audio, "formal", True, lambda: False)
            await asyncio.sleep(0.05)
        return recorder, plans

    recorder, plans = asyncio.run(replanned())
    once = SessionPlanner(planner)
    assert recorder.plans[-1] == once.reply(first + " " + second, "formal").text
    assert np.allclose(plans.session.belief, once.belief)  # the turn moved the belief once
