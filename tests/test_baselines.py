"""The text-only topic baseline that the S2S evaluation reports beside the topic head."""

from __future__ import annotations

import json

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


def test_baseline_scores_the_split_from_the_training_dialogs(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = {
        "weather": ["ఈ రోజు వర్షం పడుతోంది", "వర్షం తగ్గుతుందా"],
        "food": ["బిర్యానీ చాలా రుచిగా ఉంది", "బిర్యానీ ఎక్కడ దొరుకుతుంది"],
    }
    splits = {}
    for topic, (train_text, test_text) in lines.items():
        rows = []
        for n, text in enumerate((train_text, test_text), start=1):
            dialog_id = f"{topic}_{n:02d}"
            splits[dialog_id] = "train" if n == 1 else "test"
            turn = {"user": text, "assistant": "సరే", "topic": topic, "sentiment": 0.0,
                    "emotion": "neutral"}  # fmt: skip
            rows.append(json.dumps({"dialog_id": dialog_id, "turns": [turn]}, ensure_ascii=False))
        (corpus / f"{topic}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "telugu_s2s.json").write_text(json.dumps({"dialog_splits": splits}))

    result = topic_text_baseline(dataset, "test", corpus_dir=corpus)

    assert result["turns"] == 2 and result["train_turns"] == 2
    assert result["turn_accuracy"] == 1.0 and result["dialog_so_far_accuracy"] == 1.0
