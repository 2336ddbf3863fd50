"""Levenshtein distance over characters (or any sequence): the CER's numerator, and the slot
tagger's test for a misheard ordinary word. A leaf module, so that both can import it."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(hypothesis: Sequence, reference: Sequence, most: int | None = None) -> int:
    """Insertions + deletions + substitutions turning `hypothesis` into `reference`. With
    `most`, a distance over it is returned as most + 1 as soon as that is certain."""
    if most is not None and abs(len(hypothesis) - len(reference)) > most:
        return most + 1
    if len(hypothesis) < len(reference):  # keep the DP row as short as possible
        hypothesis, reference = reference, hypothesis
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i]
        for j, r in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
        if most is not None and min(previous) > most:
            return most + 1
    return previous[-1]
