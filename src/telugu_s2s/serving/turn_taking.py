"""A session's turn-taking: what the processing task does with each tick's engine results
and speech events (`session.Session` mixes this in; only its processing task calls it).

Barge-in: the first voiced frame while the assistant is audible pauses the output at once
(with a fade); if it grows into speech of `min_interruption_ms` the reply is cut
(`interrupted`, reason vad), otherwise it resumes (a click, a cough, a filler).

Turn mode, with an engine that can `hold`: the engine hears the user live while held
silent and is released at the endpoint, so it answers at once; it is held again when its
reply ends. Other engines get the buffered utterance after the endpoint.

A turn closes when its reply was heard to the end, when it was cut, when the engine never
answered, or at bye/disconnect; only the heard part of a reply goes to the context and model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from telugu_s2s.serving import protocol
from telugu_s2s.serving.audio_io import UtteranceBuffer
from telugu_s2s.serving.context import adapt_style
from telugu_s2s.serving.engine_api import TurnAnalysis, TurnRecord
from telugu_s2s.serving.planning import ReplyPlanning
from telugu_s2s.serving.turns import SpeechRecorder, TurnSender
from telugu_s2s.serving.vad import SpeechEvent
from telugu_s2s.text_topics import SessionTopic

if TYPE_CHECKING:
    from telugu_s2s.serving.audio_io import AudioOutput
    from telugu_s2s.serving.context import ConversationContext, Preferences
    from telugu_s2s.serving.engine_api import Engine
    from telugu_s2s.serving.metrics import InterruptionStats
    from telugu_s2s.serving.server import Hub
    from telugu_s2s.serving.vad import SpeechTracker


@dataclass
class Reply:
    id: int
    texts: list[str] = field(default_factory=list)  # monologue piece per frame
    done: bool = False  # the engine stopped speaking; frames may still be queued


@dataclass
class Barge:
    """A speech onset over the assistant: output paused, waiting to confirm or resume."""

    onset_arrival: float  # monotonic arrival of the first voiced frame
    paused_at: float
    quiet_ms: float = 0.0  # unvoiced audio since the last voiced frame, before any onset


class TurnTaking:
    """The turn logic of `Session`: the turn state is its own (`_init_turn_state`); the
    rest below comes from the session."""

    hub: Hub
    engine: Engine
    slot: int
    prefs: Preferences
    context: ConversationContext
    style: str
    frame_size: int
    frame_ms: float
    sample_rate: int
    output: AudioOutput
    tracker: SpeechTracker
    interruptions: InterruptionStats
    _tick_arrival: float | None
    send_json: Callable[[dict], Awaitable[None]]
    _now_ms: Callable[[], float]

    def _init_turn_state(self, hub: Hub, session_id: str) -> None:
        """Turn state (processing task only)."""
        cfg = hub.settings
        self.reply: Reply | None = None
        self._reply_ids = 0
        self._suppress_audio = False  # after a cut, until the engine reports silence
        self.barge: Barge | None = None
        self._user_text: list[str] = []
        self._turn_started = time.time()
        self._heard_speech = False  # the open turn has user speech (it must end in a turn)
        preroll = round(cfg.turn.preroll_ms / self.frame_ms)
        self.utterance = UtteranceBuffer(self.frame_size, preroll, cfg.turn.max_reply_frames)
        self.speech = SpeechRecorder(preroll, round(cfg.turn.max_utterance_ms / self.frame_ms))
        self.turns = TurnSender(session_id, self.send_json,
                                lambda record, agg: hub.store.save_turn(session_id, record, agg),
                                hub.transcriber, lambda code: hub.errors.update([code]),
                                SessionTopic(hub.topic_model, self.context.aggregates.topic_evidence))  # fmt: skip
        self.planning: ReplyPlanning | None = None
        if hub.reply_planner is not None and hub.transcriber is not None:

            async def set_plan(text: str | None) -> None:
                await hub.worker.call(self.engine.set_plan, self.slot, text)

            self.planning = ReplyPlanning(hub.reply_planner, hub.transcriber.transcribe, set_plan,
                                          self.turns.topic, lambda code: hub.errors.update([code]),
                                          self.context.aggregates.reply_plan)  # fmt: skip
        self.generating = False  # turn mode: the engine is being fed the utterance / may reply
        self.live_turns = callable(getattr(self.engine, "hold", None))  # turn mode hears live
        self._waited = 0  # live turn mode: frames since the endpoint without a reply
        self._held = False
        self._endpoint_at: float | None = None  # turn mode: when the endpoint was decided

    async def _on_results(self, results: list) -> None:
        for result in results:
            if result.user_text:
                self._user_text.append(result.user_text)
                if self.turns.partial_user_text:
                    await self.send_json(protocol.text_event("user", result.user_text, False))
            if self._suppress_audio:
                self._suppress_audio = result.speaking
                continue
            if result.speaking:
                if self.reply is not None and self.reply.done:  # a new reply in stream mode
                    await self._finish_turn(interrupted=False)
                if self.reply is None:
                    self._reply_ids += 1
                    self.reply = Reply(self._reply_ids)
                self.reply.texts.append(result.assistant_text)
                self.output.push(self.reply.id, np.asarray(result.audio, np.float32))
                now = time.monotonic()
                if self._tick_arrival is not None:  # the user's frame in -> the reply's out
                    self.hub.latency.record("frame_io", (now - self._tick_arrival) * 1000)
                if self._endpoint_at is not None:
                    self.hub.latency.record("endpoint_reply", (now - self._endpoint_at) * 1000)
                    self._endpoint_at = None
                if result.assistant_text:
                    await self.send_json(
                        protocol.text_event("assistant", result.assistant_text, False)
                    )
            elif self.reply is not None and not self.reply.done:
                self.reply.done = True
                self.output.end_reply(self.reply.id)
                self.generating = False
                await self._hold(self.prefs.mode == "turn")  # turn mode: listen again

    async def _on_speech(self, event: SpeechEvent | None, live: list[np.ndarray],
                         voiced: bool) -> None:  # fmt: skip
        cfg = self.hub.settings
        onset = event is not None and event.kind == "start"
        self.speech.hear(live, event)
        if self.planning is not None and event is not None:
            if onset:
                await self.planning.speech_started()
            elif event.kind == "end":
                self.planning.utterance_ended(
                    self.speech.peek(), self.style, self.context.next_index == 1,
                    lambda: self.reply is not None and not self.reply.done,
                )  # fmt: skip
        if onset and event.gap_ms >= cfg.turn.end_silence_ms:
            await self._close_unanswered()
        self.utterance.hear(live, onset=onset and self.prefs.mode == "turn")
        if onset:
            self._heard_speech = True
        by_voice = cfg.barge_in and self.hub.worker.vad is not None  # else: manual only
        if by_voice and voiced and self._audible() and self.barge is None:
            await self.output.pause()  # on the first voiced frame; `interrupted` waits
            arrival = self._tick_arrival if self._tick_arrival is not None else time.monotonic()
            self.barge = Barge(arrival, time.monotonic())
        if self.barge is not None:
            if self.tracker.in_speech and self.tracker.speech_ms >= cfg.min_interruption_ms:
                await self._interrupt(
                    "vad", (self.barge.paused_at - self.barge.onset_arrival) * 1000
                )
            elif event is not None and event.kind == "end":  # too short: a cough, a filler
                self._resume(false_interruption=True)
            elif not self.tracker.in_speech and not voiced:  # a click, or a dip in a word
                self.barge.quiet_ms += len(live) * self.frame_ms
                if self.barge.quiet_ms >= cfg.barge_resume_quiet_ms:
                    self._resume(false_interruption=False)
            elif voiced:
                self.barge.quiet_ms = 0.0
        if self.prefs.mode == "turn" and self.utterance.collecting and not self.generating:
            quiet = self.tracker.silence_ms >= cfg.turn.end_silence_ms
            too_long = len(self.utterance.frames) * self.frame_ms >= cfg.turn.max_utterance_ms
            if (quiet and not self.tracker.in_speech) or too_long:
                self.generating, self._endpoint_at = True, time.monotonic()
                if self.live_turns:  # it heard the utterance: let it speak now
                    self.utterance.discard()
                    self._waited = 0
                    await self._hold(False)
                else:
                    self.utterance.start_feed()

    async def _close_unanswered(self) -> None:
        """A new utterance while the last one still waits for a reply that never came: the
        last one's turn ends here, unanswered, instead of merging into the new one."""
        if self.reply is not None or not self._heard_speech:
            return
        if self.prefs.mode == "stream":
            await self._finish_turn(interrupted=False)
        elif self.live_turns and self.generating:  # released at the endpoint, never spoke
            self.generating = False
            await self._hold(True)
            await self._finish_turn(interrupted=False)

    def _resume(self, false_interruption: bool) -> None:
        self.barge = None
        self.output.resume()
        if false_interruption:
            self.utterance.discard()
            self.speech.drop_last()
            self.interruptions.record_false()
            self.hub.interruptions.record_false()

    async def _hold(self, silent: bool) -> None:
        """Live turn mode: hold the engine silent (listening) or let it reply."""
        if self.live_turns and silent != self._held:
            self._held = silent
            await self.hub.worker.call(self.engine.hold, self.slot, silent)

    def _audible(self) -> bool:
        return self.reply is not None and self.reply.id not in self.output.finished

    async def _check_turn_end(self) -> None:
        cfg = self.hub.settings
        if self.reply is not None:
            if self.reply.done and self.reply.id in self.output.finished:
                await self._finish_turn(interrupted=False)
        elif self.prefs.mode == "turn":
            self._waited += int(self.generating)
            waited_out = self._waited > cfg.turn.max_reply_frames
            if self.generating and (waited_out if self.live_turns else self.utterance.exhausted):
                self.generating = False  # the engine never answered
                await self._hold(True)
                await self._finish_turn(interrupted=False)
        elif (self._heard_speech and not self.tracker.in_speech
              and self.tracker.silence_ms >= cfg.no_reply_timeout_ms):  # fmt: skip
            await self._finish_turn(interrupted=False)

    # ---------------------------------------------------------------- interruptions

    async def _interrupt(self, reason: str, delay_ms: float) -> None:
        """Cut the reply: fade out, flush, silence the engine, report, close the turn."""
        reply = self.reply
        await self.output.cut()
        await self.hub.worker.call(self.engine.silence, self.slot)
        self._suppress_audio, self.barge = True, None
        self.generating = False
        self.utterance.stop_feed()  # an utterance being collected (the barge) carries on
        if self.prefs.mode == "turn":
            self._held = False  # the engine's silence above is a hold until the next endpoint
            await self._hold(True)
        heard = self.output.heard_samples(reply.id) if reply is not None else 0
        if reply is not None:
            self.interruptions.record(reason, delay_ms)
            self.hub.interruptions.record(reason, delay_ms)
        await self.send_json(protocol.interrupted_event(
            reason, self._now_ms(), 1000.0 * heard / self.sample_rate, delay_ms))  # fmt: skip
        if reply is not None:
            await self._finish_turn(interrupted=True)

    # ---------------------------------------------------------------- turns

    async def _finish_turn(self, interrupted: bool, last: bool = False) -> None:
        """Record the turn: only the heard part of the reply goes to the context and model.
        An utterance still going on belongs to the next turn, unless this is the `last`."""
        reply, self.reply = self.reply, None
        heard_samples = self.output.heard_samples(reply.id) if reply is not None else 0
        if reply is None:
            heard_frames = 0
        elif interrupted:
            heard_frames = min(len(reply.texts), round(heard_samples / self.frame_size))
        else:
            heard_frames = len(reply.texts)
        analysis = await self.hub.worker.call(self.engine.end_turn, self.slot, heard_frames)
        analysis = analysis or TurnAnalysis()
        record = TurnRecord(
            index=self.context.next_index, user_text=" ".join("".join(self._user_text).split()),
            assistant_text="".join(reply.texts[:heard_frames]) if reply is not None else "",
            interrupted=interrupted, sentiment=float(analysis.sentiment), topic=analysis.topic,
            emotion=analysis.emotion, emotions=dict(analysis.emotions),
            topics=dict(analysis.topics),
            heard_ms=1000.0 * heard_samples / self.sample_rate, started_at=self._turn_started,
            ended_at=time.time(), memory=analysis.memory,
        )  # fmt: skip
        self._user_text, self._turn_started = [], time.time()
        if self.planning is not None:
            self.context.aggregates.reply_plan = self.planning.turn_closed()
        self._heard_speech = self.tracker.in_speech and not last
        self.context.add(record)
        audio = self.speech.take(include_current=last)
        await self.turns.close_turn(record, audio, copy.deepcopy(self.context.aggregates),
                                    self._reviser(analysis.memory_turn))  # fmt: skip
        style = adapt_style(self.prefs.style, self.context.sentiments())
        if style != self.style:
            self.style = style
            await self.hub.worker.call(self.engine.configure, self.slot, style=style)

    def _reviser(self, memory_turn: int | None):
        """Hands a turn's final transcript to the engine's memory entry, if it reads text."""
        if memory_turn is None or not hasattr(self.engine, "set_turn_text"):
            return None

        async def revise(text: str) -> None:
            await self.hub.worker.call(self.engine.set_turn_text, self.slot, memory_turn, text)

        return revise

    async def _close_turn(self) -> None:
        """On bye or disconnect: keep what the user heard of an open reply, and the user's
        last utterance; then wait until every closed turn is saved and sent."""
        if self.reply is not None:
            finished = self.reply.done and self.reply.id in self.output.finished
            await self._finish_turn(interrupted=not finished, last=True)
        elif self._user_text or self._heard_speech:
            await self._finish_turn(interrupted=False, last=True)
        await self.turns.drain()
        if self.planning is not None:
            await self.planning.close()
