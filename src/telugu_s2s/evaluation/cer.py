"""Character error rate: Levenshtein distance over characters, divided by the reference length.

Texts are compared after `normalize_text`: characters outside the model's vocabulary are
dropped and whitespace runs become one space, because the text streams spell words with a
SPACE after each one and cannot emit characters they were never taught.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from telugu_s2s.data.text import TextTokenizer
from telugu_s2s.text_distance import edit_distance

_TOKENIZER = TextTokenizer()


def normalize_text(text: str) -> str:
    """Keep vocabulary characters only, collapse whitespace, strip."""
    return " ".join(_TOKENIZER.decode(_TOKENIZER.encode(text)).split())


def cer(hypothesis: str, reference: str, normalize: bool = True) -> float:
    """Edits / reference characters (an empty reference counts as one character)."""
    if normalize:
        hypothesis, reference = normalize_text(hypothesis), normalize_text(reference)
    return edit_distance(hypothesis, reference) / max(len(reference), 1)


@dataclass
class ErrorRate:
    """Corpus-level CER: total edits over total reference characters (long replies weigh more)."""

    edits: int = 0
    characters: int = 0
    pairs: int = 0

    def add(self, hypothesis: str, reference: str) -> float:
        """Count one pair; returns its own CER."""
        hypothesis, reference = normalize_text(hypothesis), normalize_text(reference)
        edits = edit_distance(hypothesis, reference)
        self.edits += edits
        self.characters += len(reference)
        self.pairs += 1
        return edits / max(len(reference), 1)

    @property
    def value(self) -> float:
        return self.edits / self.characters if self.characters else math.nan

    @classmethod
    def pooled(cls, rates) -> ErrorRate:
        """One rate over several: all their edits over all their reference characters."""
        rates = list(rates)
        return cls(sum(r.edits for r in rates), sum(r.characters for r in rates),
                   sum(r.pairs for r in rates))  # fmt: skip
