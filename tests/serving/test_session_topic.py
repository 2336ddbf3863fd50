"""The session's topic (`dialog_topic`): folded turn by turn, in closing order, from each
turn's final transcript under the text topic model (`server.dialog_topic: text`), or from the
S2S topic head's distribution without one; stored with the aggregates and resumed."""

from __future__ import annotations

import asyncio
import math

import pytest

from telugu_s2s.client import S2SClient
from telugu_s2s.serving.engine_api import TurnRecord
from telugu_s2s.serving.server import ServerSettings, create_app
from telugu_s2s.text_topics import NaiveBayesTopics, SessionTopic, fold_evidence
from tests.serving.fakes import FakeEngine, running_server
from tests.serving.test_judge_transcript import padded

WEATHER, FOOD = "ఈ రోజు వర్షం పడుతుందా", "బిర్యానీ ఎలా వండాలి"


@pytest.fixture(scope="module")
def topic_dir(tmp_path_factory):
    model = NaiveBayesTopics([
        ("వర్షం పడుతుందా ఎండ ఎక్కువ", "weather"), ("ఈ రోజు వాతావరణం ఎలా ఉంది", "weather"),
        ("బిర్యానీ వండాలి", "food"), ("అన్నం కూర ఎలా వండాలి", "food"),
    ])  # fmt: skip
    directory = tmp_path_factory.mktemp("topics")
    model.save(directory)
    return directory


class ScriptedJudge:
    """Hands out fixed transcripts, one per turn, in order."""

    def __init__(self, texts: list[str]):
        self.texts = list(texts)

    def transcribe(self, clips, sample_rate=None):
        return [self.texts.pop(0) for _ in clips]


def record(index: int, text: str = "", topics: dict | None = None) -> TurnRecord:
    return TurnRecord(index=index, user_text=text, topic="greetings", topics=topics or {})


def test_transcripts_name_the_session_topic_turn_by_turn(topic_dir):
    model = NaiveBayesTopics.load(topic_dir)
    topic = SessionTopic(model)
    topic.add(1, FOOD)
    assert topic.evidence == pytest.approx(model.log_posterior(FOOD))
    topic.add(2, "")  # nothing heard: no evidence either way
    topic.add(3, WEATHER)
    topic.add(4, WEATHER)
    expected = fold_evidence(model.log_posterior(FOOD), model.log_posterior(WEATHER))
    expected = fold_evidence(expected, model.log_posterior(WEATHER))
    assert topic.evidence == pytest.approx(expected)
    assert max(topic.evidence, key=topic.evidence.get) == "weather"
    # a resumed session goes on from its stored evidence
    resumed = SessionTopic(model, topic.evidence)
    resumed.add(5, FOOD)
    assert resumed.evidence == pytest.approx(fold_evidence(expected, model.log_posterior(FOOD)))


def test_without_a_text_model_the_s2s_head_names_it():
    topic = SessionTopic(None)
    topic.add(1, WEATHER, {"food": 0.0, "weather": 1.0})  # the head calls it greetings
    assert topic.evidence is None
    topic.add(2, WEATHER, {"food": 0.9, "weather": 0.1})
    topic.add(3, WEATHER, {"food": 0.0, "weather": 1.0})
    assert topic.evidence["food"] == pytest.approx(math.log(0.9) + math.log(1e-9))
    assert max(topic.evidence, key=topic.evidence.get) == "weather"
    topic.add(4, FOOD)  # an engine without a distribution: nothing to fold
    assert len(topic.evidence) == 2


def test_text_topic_mode_needs_its_model_and_a_known_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="make train-topics"):
        create_app(FakeEngine(), ServerSettings(store_url=":memory:", dialog_topic="text",
                                                text_topics_dir=str(tmp_path)), vad=None)  # fmt: skip
    with pytest.raises(ValueError, match="dialog_topic"):
        create_app(FakeEngine(), ServerSettings(store_url=":memory:", dialog_topic="votes"),
                   vad=None)  # fmt: skip


def test_the_judges_transcripts_name_the_topic_in_turn_events_and_the_store(
    speech, topic_dir, tmp_path
):
    engine = FakeEngine(reply_frames=5, reply_after_frames=6)  # its head says "greetings"
    settings = ServerSettings(store_url=f"sqlite:///{tmp_path / 's.db'}", stats_interval_s=0,
                              user_transcript="judge", dialog_topic="text",
                              text_topics_dir=str(topic_dir))  # fmt: skip
    judge = ScriptedJudge([FOOD, WEATHER, WEATHER])
    with running_server(engine, settings, judge=judge) as (url, app):

        async def scenario() -> list[dict]:
            async with S2SClient(url, "priya", "stream") as client:
                for n in (1, 2, 3):
                    await client.stream(padded(speech["question"]))
                    await client.wait_for(
                        lambda e, n=n: e["type"] == "turn" and e["index"] == n, 20
                    )
                return client, [e for e in client.events if e["type"] == "turn"]

        client, turns = asyncio.run(scenario())
        stored = app.state.hub.store.load(client.ready["session"])
    assert [t["user_text"] for t in turns] == [FOOD, WEATHER, WEATHER]
    assert [t["topic"] for t in turns] == ["greetings"] * 3  # the head's, per turn
    model, evidence, expected = NaiveBayesTopics.load(topic_dir), None, []
    for text in (FOOD, WEATHER, WEATHER):
        evidence = fold_evidence(evidence, model.log_posterior(text))
        expected.append(max(evidence, key=evidence.get))
    assert [t["dialog_topic"] for t in turns] == expected
    assert expected[0] == "food" and expected[-1] == "weather"
    assert stored.aggregates.top_topic == "weather"
    stored_evidence = stored.aggregates.to_json()["topic_evidence"]
    assert stored_evidence == pytest.approx(evidence, abs=1e-3)


def test_a_failing_topic_model_keeps_the_turn():
    import numpy as np

    from telugu_s2s.serving.context import Aggregates
    from telugu_s2s.serving.turns import TurnSender

    class Broken:
        def log_posterior(self, text):
            raise RuntimeError("the topic model broke")

    saved, sent = [], []

    async def send(event: dict) -> None:
        sent.append(event)

    sender = TurnSender("s", send, lambda r, a: saved.append((r, a)), None, lambda code: None,
                        SessionTopic(Broken()))  # fmt: skip
    asyncio.run(sender.close_turn(record(2, WEATHER), np.zeros(0, np.float32), Aggregates()))
    assert len(saved) == 1 and saved[0][0].user_text == WEATHER
    assert sent[-1]["type"] == "turn" and sent[-1]["dialog_topic"] is None
