"""How often the judge hears a held-out name or town: the link that caps slot recall.

    .venv/bin/python benchmarks/judge_names.py [--model checkpoints/asr] [--split validation]

On the user turns of a split's generated dialogs (held-out voices; validation and test
names and towns come from pools that training never uses), each word that says one of the
dialog's name or town values (in any case form) is looked for in the judge's transcript:
- `exact`: the same word, letter for letter;
- `sound`: a word that espeak-ng pronounces with the same phonemes (ప్రసంన for ప్రసన్న,
  భోపాల్లో for భోపాల్‌లో): spellings no recognizer can tell apart from the audio;
- `stem`: a word that shares its stem (the slot-recall score's match, evaluation/recall.py).
The other words of the turns give the same two rates, for 5+ letters and for shorter words.
Writes benchmarks/results/judge_names_<split>.json.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

from telugu_s2s.asr import DEFAULT_ASR_DIR, Judge
from telugu_s2s.data.corpus import load_corpus
from telugu_s2s.data.datasets import decode_audio, load_split
from telugu_s2s.data.espeak import Espeak
from telugu_s2s.data.generate.builder import HELD_OUT_TYPES
from telugu_s2s.evaluation.recall import _matches, _words
from telugu_s2s.inflect import CASES, inflect
from telugu_s2s.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
VALUE_TYPES = (*HELD_OUT_TYPES, "name")


@cache
def sound(word: str) -> str:
    return Espeak.instance().phonemes(word)


class _Rate:
    def __init__(self):
        self.words = self.exact = self.sound = self.stem = 0

    def add(self, word: str, heard: list[str]) -> None:
        self.words += 1
        self.exact += word in heard
        self.sound += word in heard or any(sound(word) == sound(h) for h in heard)
        self.stem += any(_matches(word, h) for h in heard)

    def result(self) -> dict:
        n = max(1, self.words)
        return {
            "words": self.words,
            **{k: getattr(self, k) / n for k in ("exact", "sound", "stem")},
        }


def value_forms(slots: dict) -> set[str]:
    """Every case form of the dialog's name and town values."""
    return {inflect(v, c) for kind, v in slots.values() if kind in VALUE_TYPES for c in CASES}


def measure(
    dataset: Path, split: str, model: Path, limit: int | None = None, heard: Path | None = None
) -> dict:
    """`heard`: a JSON file of the transcripts, read if it exists, else written."""
    dialogs = {d.dialog_id: d for d in load_corpus(dataset / "dialogs.jsonl") if d.slots}
    rows = load_split(dataset, split).select_columns(["audio", "sampling_rate", "role", "text",
                                                      "dialog_id"])  # fmt: skip
    picked = [r for r in rows if r["role"] == "user" and r["dialog_id"] in dialogs][:limit]
    if heard is not None and heard.exists():
        texts = json.loads(heard.read_text())
    else:
        clips = [decode_audio(r["audio"], 16000, r["sampling_rate"]) for r in picked]
        texts = Judge.load(model).transcribe(clips, sample_rate=16000)
        if heard is not None:
            heard.write_text(json.dumps(texts, ensure_ascii=False))
    values, long_words, short_words, examples = _Rate(), _Rate(), _Rate(), []
    for row, hyp in zip(picked, texts, strict=True):
        forms, heard = value_forms(dialogs[row["dialog_id"]].slots), _words(hyp)
        for word in _words(row["text"]):
            rate = values if word in forms else long_words if len(word) >= 5 else short_words
            rate.add(word, heard)
            if word in forms and word not in heard and len(examples) < 12:
                examples.append({"value": word, "ref": row["text"], "hyp": hyp})
    return {
        "model": str(model), "split": split, "utterances": len(picked),
        "values": values.result(), "other_words_5plus": long_words.result(),
        "other_words_short": short_words.result(), "missed_examples": examples,
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_ASR_DIR)
    p.add_argument("--dataset", type=Path, default=REPO_ROOT / "data" / "build" / "dataset")
    p.add_argument("--split", default="validation")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--heard", type=Path, default=None, help="transcripts to reuse, or to keep")
    args = p.parse_args()
    result = measure(args.dataset, args.split, args.model, args.limit, args.heard)
    out = args.out or RESULTS / f"judge_names_{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "missed_examples"}, indent=1))


if __name__ == "__main__":
    main()
