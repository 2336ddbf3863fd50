"""Name variety: training sentences whose names and towns are made up, for the recognizer.

The judge hears a held-out name or town letter for letter in half of its occurrences,
against 84% for other long words: it has learned the training names as words, and bends
a new one toward them or splits it. Here every training row that says a name or a town
is said again with that value replaced by a made-up one of the same type, in the same
case form, in a random espeak-ng voice (voice_variety.render_rows).

A made-up value is drawn from a first-order Markov chain over the aksharas of the
training pool's values of its type, which now and then takes any akshara of the type
instead of a likely next one (the pure chain makes only ~850 new male names). It is never a
lexicon value of any split, and never within one letter of a validation or test value, so
no held-out value leaks into training (the filter can only make held-out figures harder,
not easier).

`python -m telugu_s2s.data.name_variety --count 20000` writes `data/build/name_variety`,
which the recognizer stage adds to its rows with `data.voice_variety_dir` (a list). For the
2.1M-parameter judge it moved held-out values by two points, within noise, so the served
judge is trained without it (docs/training_hear_speak.md, session 22).
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from telugu_s2s.data.generate.builder import HELD_OUT_TYPES, GeneratorConfig, split_pools
from telugu_s2s.data.generate.lexicon import Entry, load_lexicon
from telugu_s2s.inflect import CASES, VIRAMA
from telugu_s2s.text_distance import edit_distance

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("data/build/name_variety")
_CONSONANT = "[\u0c15-\u0c39\u0c58-\u0c5a]"
_SIGN = "[\u0c3e-\u0c4c\u0c55\u0c56\u0c62\u0c63]"  # dependent vowel signs
# An akshara: a consonant cluster with its vowel sign (or a final virama), or a vowel;
# either may carry anusvara or visarga. Anything else is a piece of its own.
_AKSHARA = re.compile(
    rf"(?:{_CONSONANT}\u0c4d)*{_CONSONANT}(?:{_SIGN}|\u0c4d\u200c?)?[\u0c01-\u0c03]?"
    r"|[\u0c05-\u0c14\u0c60\u0c61][\u0c01-\u0c03]?|."
)
_START, _END = "<s>", "</s>"
_LETTER = "[\u0c00-\u0c7f\u200c]"


def aksharas(word: str) -> list[str]:
    """The word's syllable pieces (మహబూబ్‌నగర్ -> మ హ బూ బ్‌ న గ ర్)."""
    return _AKSHARA.findall(word)


def _fuses(piece: str) -> bool:
    """A consonant with a bare virama joins the next akshara into a cluster: it may only end
    a word (సిద్ధార్థ్ + ర్ makes a cluster that crashes espeak-ng in some variants)."""
    return piece.endswith(VIRAMA)


class AksharaChain:
    """A first-order Markov chain over aksharas, with word start and end; with probability
    `jump` the next piece is any akshara the words have inside them, by its frequency."""

    def __init__(self, words: list[str], jump: float = 0.15):
        if not words:
            raise ValueError("an akshara chain needs at least one word")
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        inner: dict[str, int] = defaultdict(int)
        for word in words:
            pieces = [_START, *aksharas(word), _END]
            for a, b in zip(pieces[:-1], pieces[1:], strict=True):
                counts[a][b] += 1
                if b != _END and not _fuses(b):
                    inner[b] += 1
        self.jump = jump
        self.any = (list(inner), np.asarray(list(inner.values()), float) / sum(inner.values()))
        self.next = {
            a: (list(nxt), np.asarray(list(nxt.values()), float) / sum(nxt.values()))
            for a, nxt in counts.items()
        }

    def sample(self, rng: np.random.Generator, min_len: int = 2, max_len: int = 6) -> str | None:
        """One word of `min_len`..`max_len` aksharas, or None when the draw fell outside."""
        word, piece = [], _START
        while len(word) <= max_len:
            jumped = piece != _START and not _fuses(piece) and rng.random() < self.jump
            choices, probs = self.any if jumped else self.next[piece]
            piece = choices[int(rng.choice(len(choices), p=probs))]
            if piece == _END:
                return "".join(word) if len(word) >= min_len else None
            word.append(piece)
        return None


def made_up_values(
    lexicon: dict[str, tuple[Entry, ...]], pools: dict, count: int, seed: int = 0
) -> dict[str, list[Entry]]:
    """Per held-out type, `count` new values drawn from the training pool's chain; none is a
    lexicon value, and none lies within one letter of a validation or test value."""
    every_word = {e.word for entries in lexicon.values() for e in entries}
    held_out = [
        e.word for s in ("validation", "test") for k in HELD_OUT_TYPES for e in pools[(s, k)]
    ]
    rng = np.random.default_rng(seed)
    made: dict[str, list[Entry]] = {}
    for kind in HELD_OUT_TYPES:
        chain = AksharaChain([e.word for e in pools[("train", kind)]])
        found: dict[str, Entry] = {}
        for _ in range(count * 200):
            if len(found) == count:
                break
            word = chain.sample(rng)
            if word is None or word in found or word in every_word:
                continue
            if any(edit_distance(word, h, most=1) <= 1 for h in held_out):
                continue
            found[word] = Entry(word, kind)
        if len(found) < count:
            raise ValueError(f"{kind}: only {len(found)} made-up values of {count} asked")
        made[kind] = list(found.values())
    return made


class ValueSwap:
    """Finds the training pool's names and towns (any case form) in a text and replaces each
    by a made-up value of its type in the same case."""

    def __init__(self, train_entries: list[Entry], made_up: dict[str, list[Entry]]):
        self.forms: dict[str, tuple[str, str]] = {}  # form -> (type, case)
        for entry in train_entries:
            for case in CASES:
                self.forms.setdefault(entry.form(case), (entry.type, case))
        alternatives = "|".join(map(re.escape, sorted(self.forms, key=len, reverse=True)))
        self.pattern = re.compile(rf"(?<!{_LETTER})(?:{alternatives})(?!{_LETTER})")
        self.made_up = made_up

    def finds(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def swap(self, text: str, rng: np.random.Generator) -> str:
        def _replace(match: re.Match) -> str:
            kind, case = self.forms[match.group(0)]
            pool = self.made_up[kind]
            return pool[int(rng.integers(len(pool)))].form(case)

        return self.pattern.sub(_replace, text)


def build(
    dataset_dir: str | Path, output_dir: str | Path, count: int, voices: int = 300,
    seed: int = 0, workers: int = 1, values_per_type: int = 3000, max_seconds: float = 12.0,
):  # fmt: skip
    """Say `count` training rows that name a person or a town again, with made-up values, in
    random voices; writes an HF dataset like voice_variety's."""
    from telugu_s2s.data.datasets import load_split
    from telugu_s2s.data.voice_variety import render_rows

    if count <= 0 or voices <= 0:
        raise ValueError("count and voices must be positive")
    settings = json.loads((Path(dataset_dir) / "telugu_s2s.json").read_text())
    if not settings.get("generated"):
        raise ValueError(f"{dataset_dir} holds no generated dialogs: no name pools to swap")
    lexicon = load_lexicon()
    pools = split_pools(lexicon, GeneratorConfig(**settings["generated"]))  # the build's pools
    made_up = made_up_values(lexicon, pools, values_per_type, seed)
    swap = ValueSwap([e for k in HELD_OUT_TYPES for e in pools[("train", k)]], made_up)
    rows = load_split(dataset_dir, "train")
    durations = np.asarray(rows["duration"])
    eligible = [
        i for i, text in enumerate(rows["text"])
        if durations[i] <= max_seconds / 1.2 and swap.finds(text)
    ]  # fmt: skip
    if not eligible:
        raise ValueError(f"no training row in {dataset_dir} says a training name or town")
    rng = np.random.default_rng(seed)
    picked = rng.choice(eligible, size=count, replace=count > len(eligible))
    source = rows.select(picked.tolist())
    texts = [swap.swap(t, rng) for t in source["text"]]
    source = source.map(lambda row, i: {"text": texts[i]}, with_indices=True)
    log.info("%d rows name a value; %d said with made-up values", len(eligible), len(source))
    return render_rows(source, output_dir, voices, seed, workers, id_prefix="names")


def main(argv: list[str] | None = None) -> None:
    from telugu_s2s.data.voice_variety import run_cli

    run_cli(argv, __doc__.split("\n\n")[0], build, DEFAULT_OUTPUT, count=20000, seed=1)


if __name__ == "__main__":
    main()
