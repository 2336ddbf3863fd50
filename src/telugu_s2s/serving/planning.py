"""Planned replies on the server (`server.replies: planner`): what the assistant says next.

When the VAD ends a user utterance, the judge transcribes the open turn's speech so far and
the session's `telugu_s2s.reply_planner.SessionPlanner` chooses the reply; the engine's
generator then says it at the model's own pace (`S2SGenerator.set_plan`). The user's next
utterance clears the plan, so a reply that the user talks over is not resumed and the model
is free while it listens. The VAD ends an utterance 320 ms after the last voiced frame; the
model starts its reply about 700 ms after it, so the judge (0.16 s for a 3 s utterance, 0.37 s
for 8 s, with its 21 readings on one thread) and the planner have the difference. A plan
that comes when the reply has already begun is dropped (counted as `plan_late`): changing
words mid-reply would be worse than the model's own.

An utterance that the user continues within the same turn is planned again from the state
before the turn, so that a turn moves the planner's belief once. Only numpy and the standard
library here, besides the planner itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
REPLY_SOURCES: tuple[str, ...] = ("model", "planner")


def load_reply_planner(directory: str | Path | None):
    """The reply planner export for `replies: planner`, or a clear error."""
    from telugu_s2s.reply_planner import DEFAULT_DIR, MODEL_FILE, ReplyPlanner

    directory = Path(directory) if directory else DEFAULT_DIR
    if not (directory / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"server.replies=planner needs {MODEL_FILE} in {directory}: create it with "
            "`make train-planner`, point server.reply_planner_dir at one, or set "
            "server.replies=model"
        )
    return ReplyPlanner.load(directory)


class ReplyPlanning:
    """One session's planned replies. `transcribe(audio)` is the judge; `set_plan(text)`
    hands a plan (None: none) to the engine's slot; `topic` is the session's
    `text_topics.SessionTopic` (its evidence up to the last closed turn)."""

    def __init__(self, planner, transcribe: Callable[[np.ndarray], Awaitable[str]],
                 set_plan: Callable[[str | None], Awaitable[None]], topic,
                 on_error: Callable[[str], None], state: dict | None = None):  # fmt: skip
        from telugu_s2s.reply_planner import SessionPlanner

        self.session = SessionPlanner.from_state(planner, state)  # a resumed session goes on
        self._before_turn: SessionPlanner | None = None  # the state the open turn plans from
        self._transcribe, self._set_plan, self._topic = transcribe, set_plan, topic
        self._on_error = on_error
        self._task: asyncio.Task | None = None
        self._generation = 0  # bumped by every utterance start: a stale plan is dropped
        self.plan: str | None = None  # the open turn's plan, once chosen

    def _topic_with(self, text: str, first_turn: bool) -> str | None:
        """The session's topic with this utterance folded in (none for the opening turn)."""
        from telugu_s2s.text_topics import fold_evidence, top_topic

        model = getattr(self._topic, "model", None)
        if first_turn or model is None or not text.strip():
            return None if first_turn else self._topic.top
        return top_topic(fold_evidence(self._topic.evidence, model.log_posterior(text)))

    async def speech_started(self) -> None:
        """The user speaks: any plan is void; the model is free while it listens."""
        self._generation += 1
        if self.plan is not None:
            self.plan = None
            await self._set_plan(None)

    def utterance_ended(self, audio: np.ndarray, style: str, first_turn: bool,
                        replying: Callable[[], bool]) -> None:  # fmt: skip
        """Plan from the open turn's speech `audio` so far; `replying()` says whether the
        reply has begun (then the plan is late and dropped)."""
        if audio.size == 0:
            return
        self._task = asyncio.create_task(
            self._plan(audio, style, first_turn, replying, self._generation)
        )

    async def _plan(self, audio: np.ndarray, style: str, first_turn: bool,
                    replying: Callable[[], bool], generation: int) -> None:  # fmt: skip
        try:
            text = await self._transcribe(audio)
            if self._before_turn is None:
                self._before_turn = self.session.copy()
            session = self._before_turn.copy()
            topic = self._topic_with(text, first_turn)
            plan = await asyncio.to_thread(session.reply, text, style, topic)
        except Exception:  # noqa: BLE001 - the model says its own words instead
            log.exception("reply planning failed")
            self._on_error("plan_error")
            return
        if generation != self._generation:
            return  # the user spoke again: the next utterance's end plans anew
        if replying():
            self._on_error("plan_late")
            return
        self.session, self.plan = session, plan.text
        await self._set_plan(plan.text)

    def turn_closed(self) -> dict:
        """The turn is over: the next one plans from the state its last plan left, which is
        returned for the store (`Aggregates.reply_plan`)."""
        self._before_turn = None
        return self.session.state()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
