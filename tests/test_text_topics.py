"""The text topic model: trained on a dataset's training dialogs, saved and loaded as counts,
its posterior normalised; bad files give clear errors; the CLI trains and predicts."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from telugu_s2s.evaluation.tally import Tally
from telugu_s2s.evaluation.topics import DialogTopics
from telugu_s2s.labels import TOPICS
from telugu_s2s.text_topics import MODEL_FILE, NaiveBayesTopics, main, train

LINES = {
    "weather": ["ఈ రోజు వర్షం పడుతోంది", "రేపు ఎండ ఎక్కువగా ఉంటుంది"],
    "food": ["బిర్యానీ చాలా రుచిగా ఉంది", "పప్పు అన్నం తిన్నాను"],
}


@pytest.fixture()
def dataset_dir(tmp_path):
    dialogs = [
        {"dialog_id": f"{topic}_{split}", "topic": topic, "split": split,
         "turns": [{"user": text, "assistant": "సరే", "topic": topic, "sentiment": 0.0,
                    "emotion": "neutral"} for text in texts]}
        for topic, texts in LINES.items() for split in ("train", "test")
    ]  # fmt: skip
    dialogs.append({**dialogs[0], "dialog_id": "other", "topic": "shopping", "split": "test"})
    (tmp_path / "dialogs.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogs), encoding="utf-8"
    )
    return tmp_path


def test_trained_on_the_training_dialogs_saved_and_loaded(dataset_dir, tmp_path):
    model = train(dataset_dir)
    assert model.examples == 4 and set(model.prior) == {"weather", "food"}  # no test dialog
    posterior = model.log_posterior("సాయంత్రం వర్షం పడుతుందా")
    assert sum(math.exp(v) for v in posterior.values()) == pytest.approx(1.0)
    assert max(posterior, key=posterior.get) == model.predict("సాయంత్రం వర్షం పడుతుందా") == "weather"
    loaded = NaiveBayesTopics.load(model.save(tmp_path / "out").parent)
    assert loaded.log_posterior("బిర్యానీ కావాలి") == pytest.approx(model.log_posterior("బిర్యానీ కావాలి"))
    assert loaded.log_posterior("") == pytest.approx(model.log_posterior(""))  # the prior


def test_missing_or_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="text_topics train"):
        NaiveBayesTopics.load(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a text topic model"):
        NaiveBayesTopics.load(tmp_path)
    with gzip.open(tmp_path / MODEL_FILE, "wt") as f:
        json.dump({"format": "something else"}, f)
    with pytest.raises(ValueError, match="telugu_s2s.text_topics/1"):
        NaiveBayesTopics.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="dialogs.jsonl"):
        train(tmp_path)


def test_cli_trains_and_predicts(dataset_dir, tmp_path, capsys):
    out = tmp_path / "model"
    main(["train", "--dataset-dir", str(dataset_dir), "--out", str(out)])
    assert (out / MODEL_FILE).is_file()
    main(["predict", "--model", str(out), "వర్షం వస్తుందా", "అన్నం తిన్నావా"])
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert [line.split("\t")[0] for line in lines] == ["weather", "food"]


def test_the_evaluation_names_the_dialog_topic_as_the_server_does(dataset_dir):
    import torch

    tally, model = Tally(), train(dataset_dir)
    topics = DialogTopics(tally, model)
    head = torch.full((len(TOPICS),), -5.0)
    head[TOPICS.index("food")] = 5.0  # the head is sure of the wrong topic
    topics.add("weather", head, "వర్షం పడుతోంది", turn=1)  # the opening: evidence, not scored
    assert tally.hits["topic_dialog"] == [] and topics.shown.evidence is not None
    topics.add("weather", head, "నమస్తే", turn=2)
    topics.add("weather", head, "", turn=3)  # nothing heard: the transcripts' evidence stands
    report = tally.summary()
    assert report["topic_accuracy_dialog"] == 1.0  # what the server shows: the transcripts
    assert report["topic_accuracy_dialog_head"] == report["topic_accuracy_dialog_votes"] == 0.0
    plain = Tally()
    without = DialogTopics(plain, None)  # a server without a text model shows the head's
    without.add("food", head, "వర్షం పడుతోంది", turn=2)
    assert plain.summary()["topic_accuracy_dialog"] == 1.0
