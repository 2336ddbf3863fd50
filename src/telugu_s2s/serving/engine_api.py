"""What the server needs from a model engine: a small protocol plus its value types.

The server never touches models directly. It holds one `Engine` and calls it from a single
worker thread (see `serving.worker`), so an engine needs no locking. Each session owns one
slot; every 80 ms tick the server calls `step` once with one input frame per active slot,
which lets the engine run all sessions as one batch. Sessions join and leave between ticks.

Only numpy and the standard library are imported here, so engines and fakes can implement
the protocol without pulling in the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

ASSISTANT_SPEAKERS: tuple[str, ...] = ("arjun", "ravi", "priya", "lakshmi")
STYLES: tuple[str, ...] = ("formal", "casual")


class EngineFull(RuntimeError):
    """`join` found every slot taken: the server refuses the connection (`server_busy`)."""


# Components an engine may report in StepResult.timings (milliseconds, per slot and step).
ENGINE_COMPONENTS: tuple[str, ...] = ("encode", "context", "s2s", "decode")


@dataclass
class TurnRecord:
    """One finished exchange, as the context window, the store and the model see it."""

    index: int  # 1-based turn number within the session (keeps counting past the window)
    user_text: str = ""
    assistant_text: str = ""  # only the part of the reply that reached the user
    interrupted: bool = False
    sentiment: float = 0.0  # -1..1
    topic: str | None = None
    emotion: str | None = None
    emotions: dict[str, float] = field(default_factory=dict)  # distribution, when known
    topics: dict[str, float] = field(default_factory=dict)  # distribution, when known
    heard_ms: float = 0.0  # assistant audio sent before the turn ended
    started_at: float = 0.0  # unix seconds
    ended_at: float = 0.0
    # The engine's pooled embedding of the turn (D,) float32: restores ContextMemory exactly
    # after a restart. Opaque to the server; None when the engine keeps none.
    memory: np.ndarray | None = None

    def to_json(self) -> dict:
        """Everything except `memory` (stored separately as a blob)."""
        return {k: v for k, v in self.__dict__.items() if k != "memory"}

    @classmethod
    def from_json(cls, values: dict, memory: np.ndarray | None = None) -> TurnRecord:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known, memory=memory)


@dataclass
class SlotConfig:
    speaker: str
    style: str = "formal"  # one of STYLES (the server resolves preferences like "auto")
    temperature: float = 0.35
    top_k: int = 50
    context: list[TurnRecord] = field(default_factory=list)  # oldest first, at most 10


@dataclass
class StepResult:
    audio: np.ndarray  # (frame_size,) float32 in [-1, 1]: the assistant's voice this frame
    speaking: bool  # the assistant is producing a reply (its audio is worth sending)
    assistant_text: str = ""  # monologue piece aligned with this frame ("" if none)
    user_text: str = ""  # transcript piece of the user's speech ("" if none)
    timings: dict[str, float] = field(default_factory=dict)  # ms per ENGINE_COMPONENTS key


@dataclass
class TurnAnalysis:
    """The analysis heads on the pooled user turn."""

    sentiment: float = 0.0  # tanh, -1..1
    topic: str | None = None
    emotion: str | None = None  # argmax of `emotions`
    emotions: dict[str, float] = field(default_factory=dict)
    topics: dict[str, float] = field(default_factory=dict)  # the topic head's distribution
    memory: np.ndarray | None = None  # pooled turn embedding (D,), as pushed into ContextMemory
    memory_turn: int | None = None  # the engine's id of that memory entry (`set_turn_text`)


@runtime_checkable
class Engine(Protocol):
    sample_rate: int  # 16000
    frame_size: int  # samples per step: 1280 (80 ms)
    speakers: list[str]  # voices `join`/`configure` accept

    def join(self, config: SlotConfig) -> int:
        """Open a slot with fresh streaming state and `config.context` in its memory.
        Raises `EngineFull` when every slot is taken."""
        ...

    def leave(self, slot: int) -> None: ...

    def configure(self, slot: int, **changes) -> None:
        """Change `speaker`, `style`, `temperature` or `top_k` of a live slot."""
        ...

    def step(self, frames: dict[int, np.ndarray]) -> dict[int, StepResult]:
        """One frame (frame_size,) float32 of user audio per slot -> one result per slot."""
        ...

    def silence(self, slot: int) -> None:
        """Barge-in: the assistant stops speaking now and listens."""
        ...

    # Optional: `hold(slot, silent=True)` keeps the slot silent while it hears the user until
    # `hold(slot, False)` (turn mode hears the utterance live and speaks at the endpoint).
    # Without it, turn mode feeds the engine the buffered utterance after the endpoint.

    def end_turn(self, slot: int, heard_frames: int | None = None) -> TurnAnalysis | None:
        """Close the current turn: analyse the pooled user turn and push the turn into the
        context memory, keeping only the first `heard_frames` assistant frames of the reply
        (None: all of it). Returns None when the engine has no analysis."""
        ...

    # Optional: `set_turn_text(slot, memory_turn, text)` gives a memory entry (the
    # `TurnAnalysis.memory_turn` of its turn) the turn's final user transcript, for an engine
    # whose memory reads what was said; a turn no longer in the slot's memory is ignored.
