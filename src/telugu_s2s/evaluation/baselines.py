"""Text-only reference points for the S2S analysis heads.

`topic_text_baseline` trains a character n-gram naive Bayes on the gold user transcripts of
the training dialogs and scores it on another split's dialogs: the topic accuracy that the
words alone support, with no audio and no recognition errors. The S2S topic head works from
speech in unseen voices, so on held-out dialogs this is a practical ceiling for it, and it
says how much the corpus (a handful of dialogs per topic) limits the measurement.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from telugu_s2s.data.corpus import Dialog, load_corpus


def char_ngrams(text: str, orders: tuple[int, ...] = (2, 3, 4)) -> list[str]:
    padded = f" {text} "
    return [padded[i : i + n] for n in orders for i in range(len(padded) - n + 1)]


class NaiveBayesTopics:
    """Multinomial naive Bayes over character n-grams, add-one smoothing."""

    def __init__(self, examples: list[tuple[str, str]]):
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.prior: Counter = Counter()
        for text, topic in examples:
            self.prior[topic] += 1
            self.counts[topic].update(char_ngrams(text))
        self.vocab = len({g for c in self.counts.values() for g in c})
        self.totals = {t: sum(c.values()) for t, c in self.counts.items()}
        self.examples = sum(self.prior.values())

    def predict(self, text: str) -> str:
        grams, n = char_ngrams(text), self.examples

        def score(topic: str) -> float:
            denom = self.totals[topic] + self.vocab
            counts = self.counts[topic]
            return math.log(self.prior[topic] / n) + sum(
                math.log((counts[g] + 1) / denom) for g in grams
            )

        return max(self.prior, key=score)


def _dialogs_by_split(
    dataset_dir: str | Path, corpus_dir: str | Path | None
) -> dict[str, list[Dialog]]:
    info = json.loads((Path(dataset_dir) / "telugu_s2s.json").read_text())
    splits = info["dialog_splits"]
    dialogs = load_corpus(corpus_dir) if corpus_dir else load_corpus()
    out: dict[str, list[Dialog]] = defaultdict(list)
    for dialog in dialogs:
        if dialog.dialog_id in splits:
            out[splits[dialog.dialog_id]].append(dialog)
    return out


def topic_text_baseline(dataset_dir: str | Path, split: str = "test",
                        corpus_dir: str | Path | None = None) -> dict:  # fmt: skip
    """Accuracy of the text baseline per user turn, alone and with the dialog so far."""
    by_split = _dialogs_by_split(dataset_dir, corpus_dir)
    train = [(t.user, t.topic) for d in by_split["train"] for t in d.turns]
    if not train or not by_split[split]:
        raise ValueError(f"no dialogs in train or {split} under {dataset_dir}")
    model = NaiveBayesTopics(train)
    turn_hits, context_hits = [], []
    for dialog in by_split[split]:
        history = ""
        for turn in dialog.turns:
            history = f"{history} {turn.user}"
            turn_hits.append(model.predict(turn.user) == turn.topic)
            context_hits.append(model.predict(history) == turn.topic)
    return {
        "turns": len(turn_hits),
        "turn_accuracy": sum(turn_hits) / len(turn_hits),
        "dialog_so_far_accuracy": sum(context_hits) / len(context_hits),
        "train_turns": len(train),
    }
