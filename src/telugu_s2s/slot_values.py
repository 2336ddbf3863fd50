"""Slot values in what the user said (names, towns, days, dishes, counts), whatever the phrasing.

The reply planner reads a value by aligning the user's words with a training turn's
(`reply_planner.extract_slots`). That fails on phrasings the corpus never had ("మైసూరు నుంచి
మాట్లాడుతున్నాను, నా పేరు ఆనంద్"), and such turns state most of the facts that a recall turn
needs later (on 100 validation dialogs, 76 of 123 needed values were never read). This tagger:
- finds the values the training dialogs used (a day, a count, a dish, a festival, a known
  name or town; up to three words, a case ending allowed after the last);
- types a word that the training user turns never used as an ordinary word (a held-out name
  or town) by its neighbours and its case ending: a naive Bayes over the training turns'
  open-class slots and ordinary words (before a name often పేరు or నేను; a town often ends
  in -లో or comes before నుంచి). Uniform prior: an unknown word is as likely a value as not.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

TRIM = " ,.?!-"
SLOT = re.compile(r"\{(\w+)\}")
OPEN_TYPES = ("name", "place", "male_name", "female_name")  # held out: typed by context
OTHER = "O"  # an ordinary word
MAX_WORDS = 3
MARGIN = (
    0.0  # log-odds by which a value's type must beat OTHER (validation: 2 lost 17 of 100 names)
)


def words(text: str) -> list[str]:
    return [w.strip(TRIM) for w in text.split() if w.strip(TRIM)]


class SlotValueTagger:
    """See the module doc; `fit` builds one from dialogs with slots."""

    def __init__(self, gazetteer: dict[str, str], ordinary: set[str], endings: list[str],
                 counts: dict[str, dict[str, int]]):  # fmt: skip
        self.gazetteer, self.ordinary = gazetteer, ordinary
        self.endings = sorted(endings, key=len, reverse=True)  # longest first
        self.counts = counts  # feature -> {type or OTHER: count}
        self.totals = Counter()
        for per_type in counts.values():
            self.totals.update(per_type)
        self.features = len(counts)

    def split_ending(self, word: str) -> tuple[str, str]:
        for ending in self.endings:
            if word.endswith(ending) and len(word) > len(ending) + 1:
                return word[: -len(ending)].rstrip("\u200c"), ending
        return word, ""

    @staticmethod
    def context(said: list[str], i: int, ending: str) -> list[str]:
        prev = said[i - 1] if i > 0 else "<s>"
        after = said[i + 1] if i + 1 < len(said) else "</s>"
        return [f"p:{prev}", f"n:{after}", f"e:{ending}"]

    def open_type(self, features: list[str]) -> str | None:
        """The likeliest of OPEN_TYPES given the features, if it beats OTHER by MARGIN."""
        scores = {}
        for kind in (*OPEN_TYPES, OTHER):
            total = self.totals[kind] + self.features
            scores[kind] = sum(
                math.log((self.counts.get(f, {}).get(kind, 0) + 1) / total) for f in features
            )
        best = max(OPEN_TYPES, key=scores.__getitem__)
        return best if scores[best] - scores[OTHER] >= MARGIN else None

    def could_be_value(self, value: str) -> bool:
        """A known value, or one with a word the training turns never used as an ordinary one."""
        return value in self.gazetteer or any(w not in self.ordinary for w in words(value))

    def tag(self, text: str) -> list[tuple[str, str]]:
        """(type, value) of each value in `text`, in order."""
        said, out, i = words(text), [], 0
        while i < len(said):
            known = self._known_at(said, i)
            if known is not None:
                size, kind, value = known
                out.append((kind, value))
                i += size
                continue
            if said[i] not in self.ordinary:
                stem, ending = self.split_ending(said[i])
                kind = self.open_type(self.context(said, i, ending))
                if kind is not None:
                    out.append((kind, stem))
            i += 1
        return out

    def _known_at(self, said: list[str], i: int) -> tuple[int, str, str] | None:
        for size in range(min(MAX_WORDS, len(said) - i), 0, -1):
            span = " ".join(said[i : i + size])
            stem, _ = self.split_ending(span)
            for value in (span, stem):
                if value in self.gazetteer:
                    return size, self.gazetteer[value], value
        return None

    def state(self) -> dict:
        return {"gazetteer": self.gazetteer, "ordinary": sorted(self.ordinary),
                "endings": self.endings, "counts": self.counts}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> SlotValueTagger:
        return cls(state["gazetteer"], set(state["ordinary"]), state["endings"], state["counts"])


def fit(dialogs, delexicalize) -> SlotValueTagger:
    """From the dialogs' user turns and slots; `delexicalize(text, slots)` names the values."""
    gazetteer, ordinary, endings = {}, set(), Counter()
    turns = []  # (words with slots named, the dialog's slots)
    for dialog in dialogs:
        slots = dialog.slots or {}
        gazetteer.update({value: kind for kind, value in slots.values() if value})
        for turn in dialog.turns:
            said = words(delexicalize(turn.user, slots))
            turns.append((said, slots))
            for word in said:
                match = SLOT.search(word)
                if match is None:
                    ordinary.add(word)
                elif word[match.end() :]:
                    endings[word[match.end() :]] += 1
    endings = [e for e, n in endings.items() if n >= 3 and len(e.strip("\u200c")) >= 2]
    tagger = SlotValueTagger(gazetteer, ordinary, endings, {})
    counts: dict[str, Counter] = defaultdict(Counter)
    for said, slots in turns:
        shown = [SLOT.sub("{}", w) if SLOT.search(w) else w for w in said]  # any slot alike
        for i, word in enumerate(said):
            match = SLOT.search(word)
            if match is None:
                kind, ending = OTHER, tagger.split_ending(word)[1]
            elif match.group(1) in slots:
                kind, ending = slots[match.group(1)][0], word[match.end() :]
            else:
                continue
            if kind in (*OPEN_TYPES, OTHER):
                for feature in tagger.context(shown, i, ending):
                    counts[feature][kind] += 1
    counts = {f: dict(c) for f, c in counts.items()}
    return SlotValueTagger(gazetteer, ordinary, tagger.endings, counts)
