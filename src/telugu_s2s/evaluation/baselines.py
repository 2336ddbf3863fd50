"""Text-only reference points for the S2S analysis heads.

`topic_text_baseline` trains a character n-gram naive Bayes on the gold user transcripts of
the training dialogs and scores it on another split's dialogs against each dialog's topic
label: the accuracy that the words alone support, with no audio and no recognition errors.
The S2S topic head works from speech in unseen voices, so on held-out dialogs this is a
practical ceiling for it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from telugu_s2s.data.corpus import Dialog, load_corpus
from telugu_s2s.text_topics import NaiveBayesTopics, fit, fit_emotions


def dialogs_by_split(dataset_dir: str | Path) -> dict[str, list[Dialog]]:
    """The dataset's dialogs (`dialogs.jsonl`, written by the synth build) grouped by split."""
    out: dict[str, list[Dialog]] = defaultdict(list)
    for dialog in load_corpus(Path(dataset_dir) / "dialogs.jsonl"):
        out[dialog.split or "train"].append(dialog)
    return out


SENTIMENT_BINS = (-0.6, -0.2, 0.2, 0.6)  # five bins over -1..1


def _sentiment_bin(value: float) -> str:
    return str(sum(value > edge for edge in SENTIMENT_BINS))


def topic_baseline(train: list[Dialog], evaluated: list[Dialog]) -> dict:
    """Naive Bayes on the training dialogs' user turns, scored against each dialog's label.

    `dialog_so_far_accuracy` predicts from every user turn heard so far, from the second
    user turn on (the first is often a greeting that names no topic). The same model over
    each turn's emotion label gives `emotion_accuracy`; over five sentiment bins, whose
    training mean it predicts, `sentiment_mae`: the baselines beside the analysis heads.
    """
    turns = [t for d in train for t in d.turns]
    if not turns or not evaluated:
        raise ValueError("the topic baseline needs training dialogs and dialogs to score")
    model = fit(train)
    emotions = fit_emotions(train)
    moods = NaiveBayesTopics([(t.user, _sentiment_bin(t.sentiment)) for t in turns])
    binned: dict[str, list[float]] = defaultdict(list)
    for t in turns:
        binned[_sentiment_bin(t.sentiment)].append(t.sentiment)
    mean = {label: sum(values) / len(values) for label, values in binned.items()}
    turn_hits, context_hits, emotion_hits, sentiment_errors = [], [], [], []
    for dialog in evaluated:
        history = ""
        for turn in dialog.turns:
            history = f"{history} {turn.user}"
            turn_hits.append(model.predict(turn.user) == dialog.topic)
            if turn.index >= 1:
                context_hits.append(model.predict(history) == dialog.topic)
            emotion_hits.append(emotions.predict(turn.user) == turn.emotion)
            sentiment_errors.append(abs(mean[moods.predict(turn.user)] - turn.sentiment))
    return {
        "dialogs": len(evaluated),
        "turns": len(turn_hits),
        "turn_accuracy": sum(turn_hits) / len(turn_hits),
        "dialog_so_far_accuracy": sum(context_hits) / max(1, len(context_hits)),
        "emotion_accuracy": sum(emotion_hits) / len(emotion_hits),
        "sentiment_mae": sum(sentiment_errors) / len(sentiment_errors),
        "train_turns": len(turns),
    }


def topic_text_baseline(dataset_dir: str | Path, split: str = "test") -> dict:
    """The text baseline of a built dataset: trained on its train split, scored on `split`."""
    by_split = dialogs_by_split(dataset_dir)
    if not by_split["train"] or not by_split[split]:
        raise ValueError(f"no dialogs in train or {split} under {dataset_dir}")
    return topic_baseline(by_split["train"], by_split[split])
