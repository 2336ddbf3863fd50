"""A deterministic stand-in for the model engine, plus helpers to run a real server.

`FakeEngine` implements the `Engine` protocol without models. Per slot it listens with an
energy detector; once the user has spoken and then been quiet for `reply_after_frames`
frames it "replies": a sine tone of `reply_frames` frames, one character of `reply_text`
per frame. The user transcript is the dominant frequency of what it heard (`<440Hz>`), so
tests can tell turns apart; tones below 300 Hz count as negative sentiment. It records
every join, configure, silence and end_turn, and keeps the heard context per slot.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from telugu_s2s.serving.engine_api import EngineFull, SlotConfig, StepResult, TurnAnalysis

REPLY_TEXT = "నమస్కారం మీకు ఏ విధంగా సహాయం చేయగలను చెప్పండి "


@dataclass
class FakeSlot:
    config: SlotConfig
    speaking: bool = False
    speech_frames: int = 0
    quiet_frames: int = 0
    position: int = 0  # reply frames produced
    spectrum: np.ndarray | None = None
    transcript: str = ""
    context: list[tuple[str, str]] = field(default_factory=list)  # (user, heard reply)
    plan: str | None = None  # set_plan: the next reply's text, one character a frame


class FakeEngine:
    sample_rate = 16000
    frame_size = 1280

    def __init__(self, reply_frames: int = 12, reply_after_frames: int = 3, speech_rms: float = 0.01,
                 reply_hz: float = 330.0, amplitude: float = 0.5, reply_text: str = REPLY_TEXT,
                 step_delay_ms: float = 0.0, max_slots: int | None = None):  # fmt: skip
        self.max_slots = max_slots
        self.speakers = ["arjun", "ravi", "priya", "lakshmi"]
        self.reply_frames = reply_frames
        self.reply_after_frames = reply_after_frames
        self.speech_rms = speech_rms
        self.reply_hz = reply_hz
        self.amplitude = amplitude
        self.reply_text = (reply_text * (reply_frames // len(reply_text) + 1))[:reply_frames]
        self.step_delay_ms = step_delay_ms
        self.slots: dict[int, FakeSlot] = {}
        self.left: dict[int, FakeSlot] = {}
        self.calls: list[tuple] = []  # (method, slot, details)
        self.batch_sizes: list[int] = []
        self.frames_by_slot: Counter[int] = Counter()
        self._next = 0
        self._thread: int | None = None  # every call must come from one thread
        self._memory_turns = 0
        self.turn_texts: list[tuple[int, int, str]] = []  # set_turn_text: (slot, turn, text)

    def slot(self, slot: int) -> FakeSlot:
        """A slot, open or left."""
        return self.slots[slot] if slot in self.slots else self.left[slot]

    def _check_thread(self) -> None:
        ident = threading.get_ident()
        assert self._thread in (None, ident), "engine called from two threads"
        self._thread = ident

    def join(self, config: SlotConfig) -> int:
        self._check_thread()
        if self.max_slots is not None and len(self.slots) >= self.max_slots:
            raise EngineFull(f"all {self.max_slots} engine slots are busy")
        slot, self._next = self._next, self._next + 1
        self.slots[slot] = FakeSlot(
            config, context=[(t.user_text, t.assistant_text) for t in config.context]
        )
        self.calls.append(("join", slot, config))
        return slot

    def leave(self, slot: int) -> None:
        self._check_thread()
        self.left[slot] = self.slots.pop(slot)
        self.calls.append(("leave", slot, None))

    def configure(self, slot: int, **changes) -> None:
        self._check_thread()
        for key, value in changes.items():
            setattr(self.slots[slot].config, key, value)
        self.calls.append(("configure", slot, changes))

    def silence(self, slot: int) -> None:
        self._check_thread()
        s = self.slots[slot]
        s.speaking, s.speech_frames, s.quiet_frames = False, 0, 0
        self.calls.append(("silence", slot, s.position))

    def end_turn(self, slot: int, heard_frames: int | None = None) -> TurnAnalysis:
        self._check_thread()
        s = self.slots[slot]
        heard = s.position if heard_frames is None else heard_frames
        s.context.append((s.transcript, self.reply_text[:heard]))
        heard_hz = re.findall(r"<(\d+)Hz>", s.transcript)
        hz = float(heard_hz[-1]) if heard_hz else 0.0
        s.transcript, s.position = "", 0
        self.calls.append(("end_turn", slot, heard_frames))
        negative = 0 < hz < 300
        return TurnAnalysis(sentiment=-0.8 if negative else 0.5, topic="weather" if negative else "greetings",
                            emotion="sad" if negative else "happy", emotions={"happy": 0.7, "sad": 0.3},
                            memory=np.array([hz, heard], np.float32),
                            memory_turn=self._memory_turn())  # fmt: skip

    def _memory_turn(self) -> int:
        self._memory_turns += 1
        return self._memory_turns - 1

    def set_turn_text(self, slot: int, memory_turn: int, text: str) -> None:
        self._check_thread()
        self.turn_texts.append((slot, memory_turn, text))

    def set_plan(self, slot: int, text: str | None) -> None:
        self._check_thread()
        self.slots[slot].plan = text
        self.calls.append(("set_plan", slot, text))

    def step(self, frames: dict[int, np.ndarray]) -> dict[int, StepResult]:
        self._check_thread()
        self.batch_sizes.append(len(frames))
        self.frames_by_slot.update(frames.keys())
        if self.step_delay_ms:
            time.sleep(self.step_delay_ms / 1000)
        return {slot: self._step_one(self.slots[slot], frame) for slot, frame in frames.items()}

    def _step_one(self, s: FakeSlot, frame: np.ndarray) -> StepResult:
        t0 = time.perf_counter()
        assert frame.shape == (self.frame_size,) and frame.dtype == np.float32
        silent = np.zeros(self.frame_size, np.float32)
        t1 = time.perf_counter()
        timings = {"encode": (t1 - t0) * 1000, "context": 0.01, "s2s": 0.02}
        if s.speaking:
            n = np.arange(self.frame_size) + s.position * self.frame_size
            audio = (
                self.amplitude * np.sin(2 * np.pi * self.reply_hz * n / self.sample_rate)
            ).astype(np.float32)
            said = self.reply_text if s.plan is None else s.plan
            text = said[s.position]
            s.position += 1
            s.speaking = s.position < (self.reply_frames if s.plan is None else len(s.plan))
            timings["decode"] = (time.perf_counter() - t1) * 1000
            return StepResult(audio, True, assistant_text=text, timings=timings)
        user_text = ""
        if float(np.sqrt(np.mean(frame**2))) > self.speech_rms:
            s.speech_frames += 1
            s.quiet_frames = 0
            power = np.abs(np.fft.rfft(frame)) ** 2  # (F/2+1,)
            s.spectrum = power if s.spectrum is None else s.spectrum + power
        elif s.speech_frames:
            s.quiet_frames += 1
            if s.quiet_frames >= self.reply_after_frames:
                peak = int(np.argmax(s.spectrum)) * self.sample_rate / self.frame_size
                user_text = f"<{peak:.0f}Hz>"
                s.transcript += user_text
                s.speaking, s.position, s.speech_frames, s.spectrum = True, 0, 0, None
        timings["decode"] = (time.perf_counter() - t1) * 1000
        return StepResult(silent, False, user_text=user_text, timings=timings)


def tone(hz: float, seconds: float, amplitude: float = 0.3, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@contextlib.contextmanager
def running_server(engine, settings=None, vad="silero", judge=None
                   ) -> Iterator[tuple[str, object]]:  # fmt: skip
    """A real uvicorn server in a thread on a free port: yields (ws base URL, app).
    `judge`: the recognizer of `user_transcript: judge` (a stub, or None to load one)."""
    import uvicorn

    from telugu_s2s.serving.ports import listen_first_free
    from telugu_s2s.serving.server import create_app

    app = create_app(engine, settings, vad=vad, judge=judge)
    sock, port = listen_first_free("127.0.0.1", port=0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=16 << 20))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
