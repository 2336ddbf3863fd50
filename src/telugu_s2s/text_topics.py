"""The dialog's topic from what the user said: a character n-gram naive Bayes over transcripts.

    python -m telugu_s2s.text_topics train [--dataset-dir data/build/dataset] [--out checkpoints/text_topics]
    python -m telugu_s2s.text_topics predict "text" ["more text" ...]

Trained on the training dialogs' user turns, labelled with their dialog's topic (seconds, no
GPU). The server folds the posterior of each finished turn's final transcript (the judge's)
into the session's topic, and the evaluation scores the same thing. Why not the S2S model's
topic head: it pools the model's own hearing, which reads held-out voices at 25% CER, and on
30 validation dialogs it read the dialog's topic at 0.40, where this model reading the judge's
transcripts read 0.83 (docs/training_s2s.md). The export is one gzipped JSON file of counts.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict
from pathlib import Path

from telugu_s2s.json_export import load_json_export, save_json_export
from telugu_s2s.paths import REPO_ROOT

MODEL_FILE = "text_topics.json.gz"
DEFAULT_DIR = REPO_ROOT / "checkpoints" / "text_topics"
FORMAT = "telugu_s2s.text_topics/1"


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
        self._index()

    def _index(self) -> None:
        self.vocab = len({g for c in self.counts.values() for g in c})
        self.totals = {t: sum(c.values()) for t, c in self.counts.items()}
        self.examples = sum(self.prior.values())

    def _scores(self, text: str) -> dict[str, float]:
        grams = char_ngrams(text)
        scores = {}
        for topic, prior in self.prior.items():
            denom, counts = self.totals[topic] + self.vocab, self.counts[topic]
            scores[topic] = math.log(prior / self.examples) + sum(
                math.log((counts[g] + 1) / denom) for g in grams
            )
        return scores

    def predict(self, text: str) -> str:
        scores = self._scores(text)
        return max(scores, key=scores.__getitem__)

    def log_posterior(self, text: str) -> dict[str, float]:
        """log P(topic | text) for every topic (they sum to 1 in probability)."""
        scores = self._scores(text)
        top = max(scores.values())
        norm = top + math.log(sum(math.exp(s - top) for s in scores.values()))
        return {topic: s - norm for topic, s in scores.items()}

    def state(self) -> dict:
        return {"prior": dict(self.prior), "counts": {t: dict(c) for t, c in self.counts.items()}}

    @classmethod
    def from_state(cls, state: dict) -> NaiveBayesTopics:
        model = cls([])
        model.prior = Counter(state["prior"])
        model.counts = defaultdict(Counter, {t: Counter(c) for t, c in state["counts"].items()})
        model._index()
        return model

    def save(self, directory: str | Path) -> Path:
        return save_json_export(Path(directory) / MODEL_FILE, FORMAT, self.state())

    @classmethod
    def load(cls, directory: str | Path) -> NaiveBayesTopics:
        state = load_json_export(Path(directory) / MODEL_FILE, FORMAT, "text topic model",
                                 "python -m telugu_s2s.text_topics train")  # fmt: skip
        return cls.from_state(state)


def fold_evidence(evidence: dict[str, float] | None, log_probs: dict[str, float]) -> dict:
    """The session's topic evidence with one more turn's log-probabilities added."""
    out = dict(evidence or {})
    for topic, value in log_probs.items():
        out[topic] = out.get(topic, 0.0) + value
    return out


def top_topic(evidence: dict[str, float] | None) -> str | None:
    return max(evidence, key=evidence.__getitem__) if evidence else None


class SessionTopic:
    """A session's topic evidence, folded turn by turn in the order turns close: each turn's
    final transcript under the text topic `model`, or without one the S2S topic head's
    distribution from the second turn (the head reads an opening greeting as the topic
    "greetings"; the text model's counts already know what greetings say). The server keeps
    one per session (`serving.turns.TurnSender`); the evaluation scores the same rule."""

    def __init__(self, model=None, evidence: dict[str, float] | None = None):
        self.model = model  # anything with `log_posterior(text)`, e.g. NaiveBayesTopics
        self.evidence = dict(evidence) if evidence else None  # as stored: a resumed session

    def add(self, turn: int, transcript: str, head: dict[str, float] | None = None) -> None:
        """Turn number `turn` (1: the session's first), its final `transcript` and the S2S
        head's distribution `head` over the topics."""
        if self.model is not None:
            if not transcript.strip():
                return
            log_probs = self.model.log_posterior(transcript)
        elif head and turn > 1:
            log_probs = {k: math.log(max(p, 1e-9)) for k, p in head.items()}
        else:
            return
        self.evidence = fold_evidence(self.evidence, log_probs)

    @property
    def top(self) -> str | None:
        return top_topic(self.evidence)


def fit(dialogs) -> NaiveBayesTopics:
    """On the dialogs' user turns, each labelled with its dialog's topic."""
    examples = [(t.user, d.topic) for d in dialogs for t in d.turns]
    if not examples:
        raise ValueError("a text topic model needs dialogs with user turns")
    return NaiveBayesTopics(examples)


def fit_emotions(dialogs) -> NaiveBayesTopics:
    """On the dialogs' user turns, each labelled with its own emotion."""
    examples = [(t.user, t.emotion) for d in dialogs for t in d.turns]
    if not examples:
        raise ValueError("an emotion model needs dialogs with user turns")
    return NaiveBayesTopics(examples)


def train(dataset_dir: str | Path) -> NaiveBayesTopics:
    """On the training dialogs of a built dataset (`dialogs.jsonl`)."""
    from telugu_s2s.data.text_dialogs import load_dialogs

    return fit(load_dialogs(dataset_dir, "train"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train on a dataset's training dialogs")
    fit.add_argument("--dataset-dir", default="data/build/dataset")
    fit.add_argument("--out", default=str(DEFAULT_DIR))
    ask = commands.add_parser("predict", help="the topic of each text")
    ask.add_argument("texts", nargs="+")
    ask.add_argument("--model", default=str(DEFAULT_DIR))
    args = parser.parse_args(argv)
    if args.command == "train":
        model = train(args.dataset_dir)
        print(f"wrote {model.save(args.out)} ({model.examples} turns, {model.vocab} n-grams)")
    else:
        model = NaiveBayesTopics.load(args.model)
        for text in args.texts:
            print(f"{model.predict(text)}\t{text}")


if __name__ == "__main__":
    main()
