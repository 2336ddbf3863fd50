import json

import pytest

from telugu_s2s.data.corpus import (
    EMOTIONS,
    MEMORY_KINDS,
    TOPICS,
    CorpusError,
    is_telugu,
    load_corpus,
    summary,
    validate,
)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_corpus_is_valid(corpus):
    assert validate(corpus) == []


def test_corpus_size_and_coverage(corpus):
    s = summary(corpus)
    assert s["dialogs"] >= 70
    assert s["turns"] >= 450
    assert all(3 <= len(d.turns) <= 10 for d in corpus)
    assert len(TOPICS) == 10 and set(s["per_topic"]) == set(TOPICS)
    assert min(s["per_topic"].values()) >= 30
    assert s["style_variants"] >= 100
    assert s["context_dependent"] >= 50
    assert all(count > 0 for count in s["per_emotion"].values())


def test_labels_in_range(corpus):
    for d in corpus:
        for t in d.turns:
            assert -1.0 <= t.sentiment <= 1.0
            assert t.emotion in EMOTIONS and t.topic in TOPICS
            assert is_telugu(t.user) and is_telugu(t.assistant)
            if t.depends_on:
                assert t.memory in MEMORY_KINDS and max(t.depends_on) < t.index


def test_no_duplicate_turns(corpus):
    users = [t.user for d in corpus for t in d.turns]
    assert len(users) == len(set(users))


def _write(tmp_path, dialogs):
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in dialogs), encoding="utf-8")
    return load_corpus(tmp_path)


def _turn(user, reply, **kw):
    return {
        "user": user,
        "assistant": reply,
        "topic": "food",
        "sentiment": 0.0,
        "emotion": "neutral",
        **kw,
    }


def test_validator_reports_each_problem(tmp_path):
    dialogs = [{
        "dialog_id": "d1",
        "turns": [
            _turn("నమస్తే అండి", "నమస్తే, చెప్పండి"),
            _turn("నమస్తే అండి", "hello there"),  # duplicate user, Latin reply
            _turn("ఎలా ఉన్నారు", "బాగున్నాను", sentiment=1.5, emotion="bored", depends_on=[5], memory="name"),
            _turn("సరే మరి", "ఉంటాను", formal="వెళ్ళొస్తానండి"),  # formal without casual
        ],
    }]  # fmt: skip
    problems = "\n".join(validate(_write(tmp_path, dialogs)))
    for expected in (
        "duplicate user",
        "not pure Telugu",
        "outside [-1, 1]",
        "unknown emotion",
        "earlier turns",
        "both formal and casual",
    ):
        assert expected in problems


def test_unreadable_corpus_gives_clear_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorpusError, match="bad.jsonl:1"):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match="no \\*.jsonl"):
        load_corpus(tmp_path / "empty")
