"""One session's planning state over a `ReplyPlanner`: the belief and the slot values said."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from telugu_s2s.reply_planner.planner import Plan, ReplyPlanner


@dataclass
class SessionPlanner:
    """One session's planning state: the belief over dialog states and the slot values the
    user has said. The server keeps one per session; the evaluation does the same. With
    `remember` off (the evaluation's memory ablation) a turn knows only its own slot values."""

    planner: ReplyPlanner
    slots: dict[str, str] = field(default_factory=dict)
    belief: np.ndarray | None = None
    remember: bool = True
    values: list[tuple[str, str]] = field(default_factory=list)

    def copy(self) -> SessionPlanner:
        """The same state, the planner shared."""
        belief = None if self.belief is None else self.belief.copy()
        return SessionPlanner(self.planner, dict(self.slots), belief, self.remember,
                              list(self.values))  # fmt: skip

    def state(self, keep: int = 32) -> dict:
        """A small JSON-able snapshot: the slot values and the `keep` likeliest states."""
        belief = {}
        if self.belief is not None:
            top = np.argsort(-self.belief)[:keep]
            belief = {
                str(int(i)): round(float(self.belief[i]), 6) for i in top if self.belief[i] > 1e-6
            }
        return {
            "slots": dict(self.slots),
            "values": [list(v) for v in self.values],
            "belief": belief,
        }

    @classmethod
    def from_state(cls, planner: ReplyPlanner, state: dict | None) -> SessionPlanner:
        """A session planner going on from `state` (None: a fresh one); states that the
        planner does not have (another export) are dropped."""
        session = cls(planner)
        if not state:
            return session
        session.slots = {str(k): str(v) for k, v in (state.get("slots") or {}).items()}
        session.values = [(str(k), str(v)) for k, v in state.get("values") or []]
        belief = np.zeros(planner.num_states)
        for index, p in (state.get("belief") or {}).items():
            if 0 <= int(index) < planner.num_states:
                belief[int(index)] = float(p)
        session.belief = belief / belief.sum() if belief.sum() > 0 else None
        return session

    def reply(self, user_text: str, style: str, topic: str | None = None) -> Plan:
        known, values = (self.slots, self.values) if self.remember else ({}, [])
        self.belief, plan = self.planner.step(
            self.belief, user_text, style, known, topic, values
        )  # fmt: skip
        self.slots, self.values = plan.slots, plan.values
        return plan
