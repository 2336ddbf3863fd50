"""A model engine slot's state: the turn window, and how a window splits into turns.

Turns (the model has no explicit "turn" signal): the frames since the last `end_turn` form
the turn window. The user part is the window before the assistant's first speaking frame,
narrowed to its first..last *voiced* frame (user frame RMS above `voiced_rms`): a contiguous
span like the training `user_span`. Frames after the reply ended, or the trailing run of
user speech over a reply that was cut (a barge-in; pauses under `release_quiet_frames`
inside it), are carried over to the next turn's window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from telugu_s2s.data.text import BLANK
from telugu_s2s.serving.engine_api import SlotConfig


@dataclass
class TurnSegments:
    """Where a turn window splits (frame indices into the window)."""

    user: tuple[int, int]  # [start, end): the frames pooled into the turn's memory entry
    reply: tuple[int, int]  # [start, end): the assistant's first reply in the window
    carry_from: int  # frames [carry_from, n) start the next turn's window


def _voiced_span(voiced: list[bool], lo: int, hi: int) -> tuple[int, int] | None:
    hits = [i for i in range(lo, hi) if voiced[i]]
    return (hits[0], hits[-1] + 1) if hits else None


def segment_turn(voiced: list[bool], speaking: list[bool], gap_frames: int) -> TurnSegments:
    """Split a turn window (per-frame user voicing and assistant speaking) by the rules above."""
    n = len(voiced)
    start = next((i for i, s in enumerate(speaking) if s), n)
    end = next((i for i in range(start, n) if not speaking[i]), n)
    if start == n:  # no reply: nothing to carry
        carry = n
    elif end < n:  # the reply ended: what followed belongs to the next exchange
        carry = end
    else:  # cut while speaking: the user's trailing run of speech is the next turn's start
        carry = n
        last = next((i for i in range(n - 1, start - 1, -1) if voiced[i]), None)
        if last is not None and n - 1 - last <= gap_frames:  # the user is (still) speaking
            carry, i = last, last - 1
            while i >= start and carry - i <= gap_frames + 1:  # pauses of <= gap_frames
                carry = i if voiced[i] else carry
                i -= 1
    user = _voiced_span(voiced, 0, start) or _voiced_span(voiced, 0, min(carry, n))
    return TurnSegments(user or (0, start), (start, end), carry)


@dataclass
class EngineTurn:
    """A finished turn as the engine saw it."""

    user_frames: int
    reply_frames: int
    heard_frames: int
    assistant_text: str  # the heard prefix of the monologue


@dataclass
class SlotState:
    config: SlotConfig
    # The turn window: one entry per frame stepped since the last end_turn.
    hidden: list[Tensor] = field(default_factory=list)  # (D,) temporal outputs
    voiced: list[bool] = field(default_factory=list)
    speaking: list[bool] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    user_texts: list[str] = field(default_factory=list)  # what the model heard the user say
    since_active: int = 1 << 30  # frames since the assistant's last active frame
    silenced: bool = False
    held: bool = False  # `hold`: silent until released by the caller (turn mode)
    user_spoke: bool = False  # while silenced: the user has spoken since
    user_quiet: int = 0  # while silenced: quiet frames since the user last spoke
    turns: list[EngineTurn] = field(default_factory=list)
    last_heard: int = BLANK  # the ear's last CTC id: a repeat across frames is one character
    memory_ids: list[int] = field(default_factory=list)  # the memory's entries, oldest first

    def drop(self, first: int) -> None:
        for frames in (self.hidden, self.voiced, self.speaking, self.texts, self.user_texts):
            del frames[:first]
