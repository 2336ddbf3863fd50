"""The text-only topic baseline that the S2S evaluation reports beside the topic head."""

from __future__ import annotations

import json

import pytest

from telugu_s2s.evaluation.baselines import NaiveBayesTopics, topic_text_baseline


def test_naive_bayes_picks_the_topic_whose_words_a_turn_shares():
    model = NaiveBayesTopics([
        ("ఈ రోజు వర్షం బాగా పడుతోంది", "weather"),
        ("రేపు ఎండ ఎక్కువగా ఉంటుంది", "weather"),
        ("నాకు బిర్యానీ అంటే ఇష్టం", "food"),
        ("పప్పు అన్నం తిన్నాను", "food"),
    ])  # fmt: skip
    assert model.predict("సాయంత్రం వర్షం పడుతుందా") == "weather"
    assert model.predict("బిర్యానీ ఎక్కడ దొరుకుతుంది") == "food"


MOODS = {"weather": (-0.5, "sad"), "food": (0.7, "happy")}


def test_baseline_scores_the_dialog_label_from_the_training_dialogs(tmp_path):
    lines = {
        "weather": ["నమస్కారం", "ఈ రోజు వర్షం పడుతోంది", "నమస్తే", "వర్షం తగ్గుతుందా"],
        "food": ["నమస్కారం", "బిర్యానీ చాలా రుచిగా ఉంది", "నమస్తే", "బిర్యానీ ఎక్కడ దొరుకుతుంది"],
    }
    dialogs = []
    for topic, texts in lines.items():
        for n, split in ((0, "train"), (2, "test")):
            turns = [{"user": text, "assistant": "సరే", "topic": topic,
                      "sentiment": MOODS[topic][0], "emotion": MOODS[topic][1]}
                     for text in texts[n : n + 2]]  # fmt: skip
            dialogs.append({"dialog_id": f"{topic}_{split}", "topic": topic, "split": split,
                            "turns": turns})  # fmt: skip
    (tmp_path / "dialogs.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogs), encoding="utf-8"
    )

    result = topic_text_baseline(tmp_path, "test")

    assert result["dialogs"] == 2 and result["turns"] == 4 and result["train_turns"] == 4
    # The greeting alone names no topic; the dialog so far (from the second turn) does.
    assert result["dialog_so_far_accuracy"] == 1.0 and result["turn_accuracy"] < 1.0
    # emotion and sentiment per turn: the rain turn reads sad and negative, biryani happy
    # the two content turns right; the two greetings read alike, so one of them wrong
    assert result["emotion_accuracy"] == 0.75
    assert result["sentiment_mae"] == pytest.approx((0.7 - -0.5) / 4)
