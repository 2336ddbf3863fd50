"""One client connection: three concurrent tasks around one engine slot.

- input: reads the socket, re-chunks audio into the jitter buffer, validates JSON messages
  (`client_input`);
- output: `AudioOutput.run`, paced sending of the assistant's frames from a bounded queue;
- processing: once per tick takes a frame from the jitter buffer (two when it has fallen
  behind), has the worker run the VAD and the engine on it (batched with every other
  session), and drives the turn logic (`turn_taking`: barge-in, endpoints, closing turns).

All conversation state is touched only by the processing task; the input task hands it
commands.

A session with no voiced input, no client message and no reply for `idle_timeout_s` gets an
`idle` event and is closed, which frees its engine slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from telugu_s2s.serving import protocol
from telugu_s2s.serving.audio_io import AudioOutput, JitterBuffer
from telugu_s2s.serving.client_input import ClientInput
from telugu_s2s.serving.context import ConversationContext, Preferences, adapt_style
from telugu_s2s.serving.engine_api import SlotConfig
from telugu_s2s.serving.metrics import InterruptionStats
from telugu_s2s.serving.turn_taking import TurnTaking
from telugu_s2s.serving.vad import SpeechTracker, VADConfig, VADState
from telugu_s2s.serving.worker import StepRequest

if TYPE_CHECKING:
    from telugu_s2s.serving.server import Hub

log = logging.getLogger(__name__)


class Session(TurnTaking):
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
        self._last_activity = time.monotonic()
        self._tick_arrival: float | None = None  # arrival of this tick's first live frame
        self._init_turn_state(hub, session_id)

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

    # ---------------------------------------------------------------- commands

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
