"""Context window, aggregates, style adaptation, protocol checks, metrics and ports (the
store has its own tests: test_store.py)."""

from __future__ import annotations

import math
import socket
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telugu_s2s.serving import protocol
from telugu_s2s.serving.context import Aggregates, ConversationContext, Preferences, adapt_style
from telugu_s2s.serving.engine_api import TurnRecord
from telugu_s2s.serving.metrics import InterruptionStats, LatencyStats, ServerMetrics
from telugu_s2s.serving.ports import NoFreePort, listen_first_free
from telugu_s2s.serving.server import ServerSettings


def turn(
    i: int, sentiment: float = 0.0, topic: str = "food", emotion: str = "happy", **kw
) -> TurnRecord:
    return TurnRecord(index=i, user_text=f"u{i}", assistant_text=f"a{i}", sentiment=sentiment,
                      topic=topic, emotion=emotion, **kw)  # fmt: skip


def test_context_keeps_the_last_ten_turns_and_aggregates_all():
    context = ConversationContext(max_turns=10)
    for i in range(1, 13):
        context.add(turn(i, sentiment=0.5 if i % 2 else -0.5, topic="food" if i <= 4 else "travel"))
    assert [t.index for t in context.turns] == list(range(3, 13))
    agg = context.aggregates
    assert agg.turns == 12 and context.next_index == 13
    assert agg.mean_sentiment == pytest.approx(0.0)
    assert (
        agg.to_json()["topics"] == {"travel": 8, "food": 4}
        and agg.to_json()["top_topic"] == "travel"
    )


def test_session_topic_weighs_each_turn_by_its_confidence():
    from telugu_s2s.text_topics import SessionTopic

    unsure = {"food": 0.4, "travel": 0.35, "health": 0.25}
    sure = {"food": 0.02, "travel": 0.96, "health": 0.02}
    context, topic = ConversationContext(max_turns=10), SessionTopic(None)
    turns = [turn(1, topic="travel", topics={"food": 0.0, "travel": 1.0, "health": 0.0}),
             turn(2, topic="food", topics=unsure), turn(3, topic="food", topics=unsure),
             turn(4, topic="travel", topics=sure)]  # fmt: skip
    for record in turns:
        context.add(record)
        # the opening turn is left out: it says nothing of the topic
        topic.add(record.index, record.user_text, record.topics)
    agg = context.aggregates
    assert agg.to_json()["topics"] == {"travel": 2, "food": 2} and agg.top_topic == "food"  # votes
    agg.topic_evidence = topic.evidence
    assert agg.top_topic == "travel"  # two unsure turns weigh less than one sure one
    evidence = agg.to_json()["topic_evidence"]
    assert evidence["travel"] == pytest.approx(2 * math.log(0.35) + math.log(0.96), abs=1e-3)
    # stored and restored, the evidence comes back
    assert Aggregates.from_json(agg.to_json()).topic_evidence == pytest.approx(evidence, abs=1e-3)
    # no evidence (an engine without a distribution, older stores): the votes decide
    plain = Aggregates.from_json({"topics": {"food": 1}})
    plain.add(turn(2, topic="travel"))
    plain.add(turn(3, topic="travel"))
    assert plain.topic_evidence is None and plain.top_topic == "travel"


def test_turn_event_carries_the_session_topic():
    event = protocol.turn_event(turn(3, topics={"food": 1.0}).to_json(), "travel")
    assert event["type"] == "turn" and event["dialog_topic"] == "travel"
    assert event["topic"] == "food" and event["topics"] == {"food": 1.0}


@pytest.mark.parametrize(
    ("preference", "sentiments", "expected"),
    [
        ("casual", [0.2, -0.6, -0.8], "formal"),  # negative turns: calm and formal regardless
        ("casual", [0.1], "casual"),
        ("formal", [0.9, 0.9], "formal"),
        ("auto", [0.6, 0.5], "casual"),
        ("auto", [0.0], "formal"),
        ("auto", [], "formal"),
        ("casual", [-0.9, 0.8, 0.8, 0.8], "casual"),  # only the recent window counts
    ],
)
def test_adapt_style(preference, sentiments, expected):
    assert adapt_style(preference, sentiments) == expected


def test_preferences_ignore_unknown_stored_keys():
    prefs = Preferences.from_json({"speaker": "ravi", "legacy": 1}, Preferences(mode="turn"))
    assert prefs == Preferences(speaker="ravi", mode="turn")


def test_config_validation_is_all_or_nothing():
    speakers = ["arjun", "priya"]
    assert protocol.validate_config({"type": "config", "speaker": "arjun", "vad_threshold": 0.3}, speakers) == {
        "speaker": "arjun", "vad_threshold": 0.3}  # fmt: skip
    for message, code in [({"speaker": "nobody"}, "unknown_speaker"), ({"mode": "batch"}, "bad_mode"),
                          ({"style": "rude"}, "bad_style"), ({"vad_threshold": 1.5}, "bad_config"),
                          ({"vad_threshold": "x"}, "bad_config"), ({"volume": 3}, "bad_config"),
                          ({"speaker": "arjun", "mode": "nope"}, "bad_mode")]:  # fmt: skip
        with pytest.raises(protocol.ProtocolError) as err:
            protocol.validate_config({"type": "config", **message}, speakers)
        assert err.value.code == code


@pytest.mark.parametrize(("text", "code"), [("not json", "bad_json"), ("[1, 2]", "bad_message"),
                                            ('{"type": "dance"}', "unknown_type"), ("{}", "unknown_type")])  # fmt: skip
def test_bad_client_messages(text, code):
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse_client_message(text)
    assert err.value.code == code


def test_latency_percentiles_and_prometheus_metrics():
    metrics = ServerMetrics()
    latency = LatencyStats(window=1000, histogram=metrics.latency)
    for ms in range(1, 101):
        latency.record("s2s", ms)
    latency.record("vad", 2.0)
    summary = latency.summary()
    assert list(summary) == ["vad", "s2s"]  # pipeline order
    assert summary["s2s"]["p50"] == pytest.approx(50.5)
    assert summary["s2s"]["p95"] == pytest.approx(95.05)
    interruptions = InterruptionStats(delay_histogram=metrics.interruption_delay)
    interruptions.record("vad", 120.0)
    interruptions.record("manual", 30.0)
    interruptions.record_false()
    errors = Counter({"bad_json": 2})
    metrics.count_from(lambda: {
        "interruptions": ("cuts", dict(interruptions.by_reason), "reason"),
        "errors": ("errors", dict(errors), "code"),
        "frames": ("frames", 10, None),
    })  # fmt: skip
    samples = scrape(metrics.exposition())
    assert samples[("telugu_s2s_latency_seconds_count", (("component", "s2s"),))] == 100
    assert samples[("telugu_s2s_latency_seconds_sum", (("component", "s2s"),))] == pytest.approx(
        5.05
    )
    # cumulative buckets: 40 of the 100 samples (1..40 ms) are <= 40 ms
    assert (
        samples[("telugu_s2s_latency_seconds_bucket", (("component", "s2s"), ("le", "0.04")))] == 40
    )
    assert samples[("telugu_s2s_interruption_delay_seconds_count", ())] == 2
    assert samples[("telugu_s2s_interruptions_total", (("reason", "vad"),))] == 1
    assert samples[("telugu_s2s_errors_total", (("code", "bad_json"),))] == 2
    errors["bad_json"] += 1  # counters follow the running totals at the next scrape
    assert scrape(metrics.exposition())[("telugu_s2s_errors_total", (("code", "bad_json"),))] == 3
    assert samples[("telugu_s2s_frames_total", ())] == 10


def scrape(exposition: bytes) -> dict[tuple[str, tuple], float]:
    """Prometheus text -> {(sample name, sorted labels): value}, parsed by prometheus_client."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def _taken(n: int) -> tuple[list[socket.socket], list[int]]:
    """`n` listening sockets on free ports (the 'other servers')."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    return socks, [s.getsockname()[1] for s in socks]


def test_port_fallback_order_and_override():
    socks, (a, b, c) = _taken(3)
    for s in socks[1:]:
        s.close()  # a stays taken; b and c are free again
    sock, port = listen_first_free("127.0.0.1", [a, b, c])
    assert port == b
    other, port2 = listen_first_free("127.0.0.1", [a, b, c])  # a and b taken now
    assert port2 == c
    with pytest.raises(NoFreePort):
        listen_first_free("127.0.0.1", [a, b, c])
    with pytest.raises(NoFreePort):
        listen_first_free("127.0.0.1", [c], port=b)  # port= pins: no fallback
    for s in (sock, other, socks[0]):
        s.close()
    pinned, port3 = listen_first_free("127.0.0.1", [a, b], port=c)
    assert port3 == c
    pinned.close()


def test_settings_from_dict_rejects_unknown_keys():
    settings = ServerSettings.from_dict({"vad": {"threshold": 0.3}, "turn": {"burst_frames": 4}})
    assert settings.vad.threshold == 0.3 and settings.turn.burst_frames == 4
    with pytest.raises(ValueError, match="unknown"):
        ServerSettings.from_dict({"vad_treshold": 0.3})
    assert isinstance(Aggregates.from_json({}), Aggregates)
