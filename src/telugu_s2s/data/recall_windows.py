"""Training windows for the context memory: a recall turn with the fact it needs, far apart.

A generated dialog's recall turn (its reply `depends_on` an earlier turn: the user's name,
home town, plan...) comes at least 4 turns and about 20 s after the fact. A duplex training
window of 48 s that starts at a random turn rarely holds both, and when it does the fact
may still lie inside the attention window, where attention alone can copy it. The memory
learns only from windows where the fact is beyond attention and inside the window (the
first pass pools the fact's user turn into the memory; the recall reply retrieves it).

`recall_window` picks such a window: the fact's turn, then the turns after it in dialog
order until `min_gap_seconds` of dialog separate the fact's end from the recall reply's
start, then the recall turn. When the whole stretch from the fact to the recall fits the
budget, nothing is dropped; otherwise the turns between the gap and the recall turn are
left out (the generator's middle turns are self-contained exchanges).
"""

from __future__ import annotations

import numpy as np


def recall_window(
    turns: list[int],
    facts: dict[int, int],
    user_seconds: dict[int, float],
    reply_seconds: dict[int, float],
    pause_seconds: float,
    budget_seconds: float,
    min_gap_seconds: float,
    rng: np.random.Generator,
) -> list[int] | None:
    """Turn indices (ascending) for one window, or None when no recall turn fits.

    turns: the dialog's turns in order; facts: recall turn -> the turn its fact is in;
    *_seconds: each turn's utterance lengths; pause_seconds: the longest pauses of one turn
    (after the user and after the reply); budget_seconds: the window's length.
    """
    present = set(turns)
    candidates = [r for r in turns if facts.get(r) in present and facts[r] < r]

    def span(chosen: list[int]) -> float:
        return sum(user_seconds[t] + reply_seconds[t] + pause_seconds for t in chosen)

    def gap(chosen: list[int]) -> float:  # the fact's end -> the recall reply's start
        fact, recall = chosen[0], chosen[-1]
        return span(chosen[1:-1]) + reply_seconds[fact] + pause_seconds + user_seconds[recall]

    for pick in rng.permutation(len(candidates)):
        recall = candidates[int(pick)]
        stretch = [t for t in turns if facts[recall] <= t <= recall]
        if gap(stretch) < min_gap_seconds:
            continue  # attention alone reaches the fact: not a memory example
        chosen = stretch
        if span(stretch) > budget_seconds:  # the turns just after the fact, then the recall
            chosen = stretch[:1]
            while gap(chosen + [recall]) < min_gap_seconds:
                chosen.append(stretch[len(chosen)])
            chosen.append(recall)
            if span(chosen) > budget_seconds:
                continue
        return chosen
    return None
