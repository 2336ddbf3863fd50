"""One client connection: three concurrent tasks around one engine slot.

- input: reads the socket, re-chunks audio into the jitter buffer, validates JSON messages
  (`client_input`);
- output: `AudioOutput.run`, paced sending of the assistant's frames from a bounded queue;
- processing: once per tick takes a frame from the jitter buffer (two when it has fallen
  behind), has the worker run the VAD and the engine on it (batched with every other
  session), and drives the turn logic.

All conversation state is touched only by the processing task; the input task hands it
commands. Barge-in: the first voiced frame while the assistant is audible pauses the output
at once (with a fade); if it grows into speech of `min_interruption_ms` the reply is cut
(`interrupted`, reason vad), otherwise it resumes (a click, a cough, a filler).

Turn mode, with an engine that can `hold`: the engine hears the user live while held
silent and is released at the endpoint, so it answers at once; it is held again when its
reply ends. Other engines get the buffered utterance after the endpoint.

A session with no voiced input, no client message and no reply for `idle_timeout_s` gets an
`idle` event and is closed, which frees its engine slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from telugu_s2s.serving import protocol
from telugu_s2s.serving.audio_io import AudioOutput, JitterBuffer, UtteranceBuffer
from telugu_s2s.serving.client_input import ClientInput
from telugu_s2s.serving.context import ConversationContext, Preferences, adapt_style
from telugu_s2s.serving.engine_api import SlotConfig, TurnAnalysis, TurnRecord
from telugu_s2s.serving.metrics import InterruptionStats
from telugu_s2s.serving.turns import SpeechRecorder, TurnSender
from telugu_s2s.serving.vad import SpeechEvent, SpeechTracker, VADConfig, VADState
from telugu_s2s.serving.worker import StepRequest

if TYPE_CHECKING:
    from telugu_s2s.serving.server import Hub

log = logging.getLogger(__name__)


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


class Session:
    def __init__(self, ws: WebSocket, hub: Hub, session_id: str, prefs: Preferences,
                 context: ConversationContext):  # fmt: skip
        cfg = hub.settings
        self.ws, self.hub, self.id, self.prefs, self.context = ws, hub, session_id, prefs, context
        self.engine = hub.worker.engine
        self.frame_size = self.engine.frame_size
        self.sample_rate = self.engine.sample_rate
        self.frame_ms = 1000.0 * self.frame_size / self.sample_rate
        self.slot = -1
        self.style = adapt_style(prefs.style, context.sentiments())
        self.lock = asyncio.Lock()  # one writer on the socket at a time
        self.jitter = JitterBuffer(self.frame_size, cfg.jitter_prefill_frames,
                                   round(cfg.jitter_max_ms / self.frame_ms),
                                   cfg.jitter_catchup_frames, cfg.jitter_drain_ticks)  # fmt: skip
        self.output = AudioOutput(self._send_audio, self.lock, self.sample_rate, cfg.output_queue_frames,
                                  cfg.output_lead_ms, cfg.fade_ms, cfg.holdback_ms)  # fmt: skip
        vad = VADConfig(prefs.vad_threshold, cfg.vad.min_speech_ms, cfg.vad.hangover_ms)
        self.tracker = SpeechTracker(vad, self.frame_ms)
        self.vad_state = VADState()
        self.interruptions = InterruptionStats()
        self.commands: deque[tuple[dict, float]] = deque()  # (message, monotonic receive time)
        self.closing = False
        self.started = time.monotonic()
        self.frames = 0
        self._silence = np.zeros(self.frame_size, np.float32)
        self._arrivals: deque[float | None] = deque(maxlen=64)  # arrival per processed frame
        # Turn state (processing task only).
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
                                hub.transcriber, lambda code: hub.errors.update([code]))  # fmt: skip
        self.generating = False  # turn mode: the engine is being fed the utterance / may reply
        self.live_turns = callable(getattr(self.engine, "hold", None))  # turn mode hears live
        self._waited = 0  # live turn mode: frames since the endpoint without a reply
        self._held = False
        self._last_activity = time.monotonic()
        self._tick_arrival: float | None = None  # arrival of this tick's first live frame
        self._endpoint_at: float | None = None  # turn mode: when the endpoint was decided

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        config = SlotConfig(self.prefs.speaker, self.style, self.hub.settings.temperature,
                            self.hub.settings.top_k, self.context.turns)  # fmt: skip
        self.slot = await self.hub.worker.call(self.engine.join, config)
        await self._hold(self.prefs.mode == "turn")

    async def run(self) -> None:
        tasks = [asyncio.create_task(ClientInput(self).run(), name=f"input-{self.id}"),
                 asyncio.create_task(self.output.run(), name=f"output-{self.id}"),
                 asyncio.create_task(self._process(), name=f"process-{self.id}")]  # fmt: skip
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            self.closing = True
            await asyncio.wait([tasks[2]], timeout=2.0)  # processing closes the open turn
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error(
                        "session %s: %s failed", self.id, task.get_name(), exc_info=task.exception()
                    )
            self.hub.worker.cancel(self.slot)
            with contextlib.suppress(RuntimeError):  # the worker is gone at server shutdown
                await self.hub.worker.call(self.engine.leave, self.slot)

    def info(self) -> dict:
        return {"active": True, "mode": self.prefs.mode, "style": self.style, "frames": self.frames,
                "reply_active": self.reply is not None, "interruptions": self.interruptions.summary(),
                "jitter": {"depth": self.jitter.depth, "underruns": self.jitter.underruns,
                           "overflows": self.jitter.overflows}}  # fmt: skip

    # ---------------------------------------------------------------- sending

    def _now_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    async def send_json(self, event: dict) -> None:
        async with self.lock:
            await self._send_text(protocol.dumps(event))

    async def _send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closing = True

    async def _send_audio(self, samples: np.ndarray) -> None:  # called by AudioOutput under lock
        start = time.perf_counter()
        try:
            await self.ws.send_bytes(protocol.encode_pcm16(samples))
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closing = True
            return
        self.hub.latency.record("send", (time.perf_counter() - start) * 1000)

    async def send_error(self, code: str, message: str) -> None:
        self.hub.errors[code] += 1
        await self.send_json(protocol.error_event(code, message))

    # ---------------------------------------------------------------- processing task

    async def _process(self) -> None:
        interval = max(1, round(self.hub.settings.stats_interval_s * 1000 / self.frame_ms))
        idle_s = self.hub.settings.idle_timeout_s
        try:
            while not self.closing:
                while self.commands:
                    self._last_activity = time.monotonic()
                    await self._command(*self.commands.popleft())
                await self._tick()
                self.frames += 1
                if self.hub.settings.stats_interval_s > 0 and self.frames % interval == 0:
                    await self.send_json({"type": "stats", **self.info()})
                if idle_s > 0 and time.monotonic() - self._last_activity >= idle_s:
                    await self._release_idle(idle_s)
        finally:
            await asyncio.shield(self._close_turn())

    async def _release_idle(self, idle_s: float) -> None:
        """Free the slot of a client that stopped talking (a forgotten tab)."""
        self.hub.errors["idle_timeout"] += 1
        await self.send_json({
            "type": "idle", "idle_s": idle_s,
            "message": f"no speech or message for {idle_s:g} s: the session was closed to free "
                       "its slot; reconnect with the same ?session= to continue",
        })  # fmt: skip
        self.closing = True

    async def _tick(self) -> None:
        live: list[np.ndarray] = []

        def prepare(request: StepRequest) -> None:  # at the tick: the freshest input
            frames, arrivals = self._read_input()
            live.extend(frames)
            request.vad_frame = np.concatenate(frames)
            request.engine_frames = self._engine_frames(frames)
            self._tick_arrival = next((a for a in arrivals if a is not None), None)
            for arrival in arrivals:
                self._arrivals.append(arrival)

        request = StepRequest(self.slot, None, self.vad_state, [], prepare)
        try:
            outcome = await self.hub.worker.step(request)
        except Exception as exc:  # noqa: BLE001 - the engine failed; tell the client, keep serving
            await self.send_error("engine_error", f"{type(exc).__name__}: {exc}")
            return
        now = time.monotonic()
        for arrival in list(self._arrivals)[-len(live) :] if live else ():
            if arrival is not None:
                self.hub.latency.record("queue", (now - arrival) * 1000)
        await self._on_results(outcome.results)
        prob = outcome.vad_prob
        if prob is None:  # no VAD: an energy floor tells speech from an idle microphone
            prob = float(np.sqrt(np.mean(np.concatenate(live) ** 2)) > 0.01)
        event = self.tracker.update(prob, len(live) * self.frame_ms)
        voiced = prob >= self.tracker.config.threshold
        if voiced or self.reply is not None or self.generating:
            self._last_activity = now
        await self._on_speech(event, live, voiced)
        await self._check_turn_end()

    def _read_input(self) -> tuple[list[np.ndarray], list[float | None]]:
        """This tick's live frames: one, or two when the jitter buffer catches up."""
        items = self.jitter.read_tick()
        if not items:
            return [self._silence], [None]
        return [frame for frame, _ in items], [arrival for _, arrival in items]

    def _engine_frames(self, live: list[np.ndarray]) -> list[np.ndarray]:
        """What the engine hears this tick: the live frames (stream) or a burst of the
        buffered utterance followed by silence (turn, while generating)."""
        if self.prefs.mode == "stream" or self.live_turns:
            return live
        if not self.generating:
            return []
        return self.utterance.feed(min(self.hub.settings.turn.burst_frames, self.output.free))

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
            elif not self.tracker.in_speech and not voiced:  # a click: never became speech
                self._resume(false_interruption=False)
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

    async def _command(self, message: dict, received: float) -> None:
        if message["type"] == "interrupt":
            cut_at = self.barge.paused_at if self.barge is not None else time.monotonic()
            await self._interrupt("manual", max(0.0, cut_at - received) * 1000)
        elif message["type"] == "config":
            await self._configure({k: v for k, v in message.items() if k != "type"})

    async def _configure(self, changes: dict) -> None:
        for key, value in changes.items():
            setattr(self.prefs, key, value)
        if "vad_threshold" in changes:
            self.tracker.config.threshold = self.prefs.vad_threshold
        if "mode" in changes:
            self.utterance.reset()
            self.generating = False
            await self._hold(self.prefs.mode == "turn")
        engine_changes = {"speaker": self.prefs.speaker} if "speaker" in changes else {}
        style = adapt_style(self.prefs.style, self.context.sentiments())
        if style != self.style:
            self.style = engine_changes["style"] = style
        if engine_changes:
            await self.hub.worker.call(self.engine.configure, self.slot, **engine_changes)
        await asyncio.to_thread(self.hub.store.save_preferences, self.id, self.prefs)

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
            index=self.context.next_index, user_text="".join(self._user_text),
            assistant_text="".join(reply.texts[:heard_frames]) if reply is not None else "",
            interrupted=interrupted, sentiment=float(analysis.sentiment), topic=analysis.topic,
            emotion=analysis.emotion, emotions=dict(analysis.emotions),
            heard_ms=1000.0 * heard_samples / self.sample_rate, started_at=self._turn_started,
            ended_at=time.time(), memory=analysis.memory,
        )  # fmt: skip
        self._user_text, self._turn_started = [], time.time()
        self._heard_speech = self.tracker.in_speech and not last
        self.context.add(record)
        audio = self.speech.take(include_current=last)
        await self.turns.close_turn(record, audio, copy.deepcopy(self.context.aggregates))
        style = adapt_style(self.prefs.style, self.context.sentiments())
        if style != self.style:
            self.style = style
            await self.hub.worker.call(self.engine.configure, self.slot, style=style)

    async def _close_turn(self) -> None:
        """On bye or disconnect: keep what the user heard of an open reply, and the user's
        last utterance; then wait until every closed turn is saved and sent."""
        if self.reply is not None:
            finished = self.reply.done and self.reply.id in self.output.finished
            await self._finish_turn(interrupted=not finished, last=True)
        elif self._user_text or self._heard_speech:
            await self._finish_turn(interrupted=False, last=True)
        await self.turns.drain()
