"""Per-session conversation state: the last N turns, running aggregates, preferences, style.

The window (10 turns by default) is what the model's ContextMemory holds; the aggregates
cover every turn of the session, including those that slid out of the window.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from telugu_s2s.serving.engine_api import STYLES, TurnRecord
from telugu_s2s.text_topics import top_topic


@dataclass
class Preferences:
    speaker: str = "priya"
    mode: str = "stream"  # stream | turn
    style: str = "auto"  # auto | formal | casual
    vad_threshold: float = 0.5

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict, defaults: Preferences | None = None) -> Preferences:
        base = asdict(defaults or cls())
        names = {f.name for f in fields(cls)}
        return cls(**{**base, **{k: v for k, v in values.items() if k in names}})


@dataclass
class Aggregates:
    """Running figures over all turns of a session.

    The session's topic (`top_topic`) is the largest `topic_evidence`: the turns' summed
    log-probabilities, which `text_topics.SessionTopic` folds in as turns finish. Without any
    evidence it is the most voted turn topic."""

    turns: int = 0
    interrupted: int = 0
    sentiment_sum: float = 0.0
    topics: dict[str, int] | None = None  # votes: turns per topic
    emotions: dict[str, int] | None = None
    topic_evidence: dict[str, float] | None = None  # summed log-probabilities per topic
    # The reply planner's session state (`SessionPlanner.state`): a resumed session plans on.
    reply_plan: dict | None = None

    @property
    def mean_sentiment(self) -> float:
        return self.sentiment_sum / self.turns if self.turns else 0.0

    def add(self, turn: TurnRecord) -> None:
        self.turns += 1
        self.interrupted += int(turn.interrupted)
        self.sentiment_sum += turn.sentiment
        for attr, label in (("topics", turn.topic), ("emotions", turn.emotion)):
            if label is not None:
                counts = Counter(getattr(self, attr) or {})
                counts[label] += 1
                setattr(self, attr, dict(counts.most_common()))

    @property
    def top_topic(self) -> str | None:
        if self.topic_evidence:
            return top_topic(self.topic_evidence)
        return next(iter(self.topics), None) if self.topics else None

    def to_json(self) -> dict:
        return {
            "turns": self.turns,
            "interrupted": self.interrupted,
            "sentiment_sum": self.sentiment_sum,
            "mean_sentiment": round(self.mean_sentiment, 4),
            "topics": self.topics or {},
            "emotions": self.emotions or {},
            "topic_evidence": {k: round(v, 4) for k, v in (self.topic_evidence or {}).items()},
            "top_topic": self.top_topic,
            "top_emotion": next(iter(self.emotions), None) if self.emotions else None,
            "reply_plan": self.reply_plan,
        }

    @classmethod
    def from_json(cls, values: dict) -> Aggregates:
        return cls(
            turns=int(values.get("turns", 0)),
            interrupted=int(values.get("interrupted", 0)),
            sentiment_sum=float(values.get("sentiment_sum", 0.0)),
            topics=dict(values.get("topics") or {}),
            emotions=dict(values.get("emotions") or {}),
            topic_evidence=dict(values.get("topic_evidence") or {}) or None,
            reply_plan=values.get("reply_plan") or None,
        )


class ConversationContext:
    """A sliding window of the last `max_turns` turns plus running aggregates."""

    def __init__(self, max_turns: int = 10, turns: Iterable[TurnRecord] = (),
                 aggregates: Aggregates | None = None):  # fmt: skip
        self.max_turns = max_turns
        self._turns: deque[TurnRecord] = deque(turns, maxlen=max_turns)
        self.aggregates = aggregates or Aggregates()
        for turn in self._turns if aggregates is None else ():
            self.aggregates.add(turn)

    @property
    def turns(self) -> list[TurnRecord]:
        return list(self._turns)

    @property
    def next_index(self) -> int:
        return self.aggregates.turns + 1

    def add(self, turn: TurnRecord) -> None:
        self._turns.append(turn)
        self.aggregates.add(turn)

    def sentiments(self) -> list[float]:
        return [t.sentiment for t in self._turns]


def adapt_style(preference: str, sentiments: Sequence[float], window: int = 3,
                negative: float = -0.3, positive: float = 0.3) -> str:  # fmt: skip
    """The reply style for the next turn.

    After negative turns (mean sentiment of the last `window` turns <= `negative`) the reply
    is calm and formal whatever the preference; otherwise an explicit preference wins, and
    `auto` turns casual only when the user is clearly positive.
    """
    recent = list(sentiments)[-window:]
    mood = sum(recent) / len(recent) if recent else 0.0
    if mood <= negative:
        return "formal"
    if preference in STYLES:
        return preference
    return "casual" if mood >= positive else "formal"
