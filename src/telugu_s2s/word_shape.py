"""Whether a word looks like a name or a town, or like an ordinary word, by its letters.

A held-out name or town is a word no training turn has, and so is a misheard ordinary word
(మాట్లాడుతున్నను) or a phrasing's new word (క్షేమమేనా). Their neighbours may say "a value
comes here" either way; their letters differ. Names and towns end in -ేష్, -య్య, -పల్లి, -పేట;
ordinary words in verb and case endings (-న్నాను, -ేనా, -గా). `WordShape` is a naive Bayes
over a word's first and last letters: the log-odds of the training values (names and towns)
against the training turns' ordinary words, word types both, with no prior.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

SMOOTHING = 0.5


def shape_grams(word: str) -> list[str]:
    """The word's last 2-4 and first 2-3 letters, its ends marked (^ and $)."""
    marked = f"^{word}$"
    return [marked[-n:] for n in (2, 3, 4)] + [marked[:n] for n in (2, 3)]


def _gram_counts(words: set[str]) -> dict[str, int]:
    return dict(Counter(g for w in words for g in shape_grams(w)))


class WordShape:
    """`log_odds(word)`: log P(its letters | a value) - log P(its letters | an ordinary word)."""

    def __init__(self, values: dict[str, int], value_words: int, ordinary: dict[str, int],
                 ordinary_words: int):  # fmt: skip
        if value_words < 1 or ordinary_words < 1:
            raise ValueError("a word shape model needs value words and ordinary words")
        self.values, self.value_words = values, value_words
        self.ordinary, self.ordinary_words = ordinary, ordinary_words

    @classmethod
    def fit(cls, values: Iterable[str], ordinary: Iterable[str]) -> WordShape:
        """From distinct value words (names, towns) and distinct ordinary words."""
        values, ordinary = set(values), set(ordinary) - set(values)
        return cls(_gram_counts(values), len(values), _gram_counts(ordinary), len(ordinary))

    def log_odds(self, word: str) -> float:
        value_total, ordinary_total = self.value_words + 1, self.ordinary_words + 1
        return sum(
            math.log((self.values.get(g, 0) + SMOOTHING) / value_total)
            - math.log((self.ordinary.get(g, 0) + SMOOTHING) / ordinary_total)
            for g in shape_grams(word)
        )

    def state(self) -> dict:
        return {"values": self.values, "value_words": self.value_words,
                "ordinary": self.ordinary, "ordinary_words": self.ordinary_words}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> WordShape:
        return cls(state["values"], state["value_words"], state["ordinary"],
                   state["ordinary_words"])  # fmt: skip
