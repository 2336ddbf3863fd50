"""Levenshtein distance over characters (or any sequence): the CER's numerator, the slot
tagger's test for a misheard ordinary word, and the reply planner's risk. A leaf module, so
that all of them can import it. rapidfuzz computes it in C: the planner compares hundreds
of replies a turn, which the pure-Python dynamic programme took a second for."""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein


def edit_distance(hypothesis: Sequence, reference: Sequence, most: int | None = None) -> int:
    """Insertions + deletions + substitutions turning `hypothesis` into `reference`. With
    `most`, a distance over it is returned as most + 1 as soon as that is certain."""
    return Levenshtein.distance(hypothesis, reference, score_cutoff=most)
