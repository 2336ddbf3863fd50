"""The audio paths of a connection: a jitter buffer in, a paced and cuttable queue out.

`JitterBuffer` re-chunks the client's audio (any chunk size) into 80 ms frames and absorbs
network jitter: after running dry it waits for `prefill_frames` before playing again, and it
drops the oldest frames when more than `max_frames` pile up (bounded latency). A tick takes
two frames instead of one when more than `catchup_frames` wait, or when a spare frame has
waited at every tick for `drain_ticks` ticks: a burst (a client's hiccup, a clock drift)
would otherwise leave a standing delay that every later frame, and every barge-in, pays.

`AudioOutput` sends the assistant's frames at real-time pace from a bounded queue. It always
holds back the last `holdback` samples it was given, so that a cut can still fade out what
the client hears last: on `pause`/`cut` the held-back tail goes out with a half-cosine
fade over `fade` samples followed by silence, never a click. `resume` fades back in.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import numpy as np


class JitterBuffer:
    def __init__(self, frame_size: int, prefill_frames: int = 1, max_frames: int = 50,
                 catchup_frames: int = 3, drain_ticks: int = 6):  # fmt: skip
        self.frame_size = frame_size
        self.prefill_frames = max(1, prefill_frames)
        self.max_frames = max(self.prefill_frames, max_frames)
        self.catchup_frames = catchup_frames
        self.drain_ticks = drain_ticks  # 0: never drain a standing delay
        self._spare_ticks = 0  # consecutive ticks that found a frame to spare
        self._partial = np.zeros(0, np.float32)  # (< frame_size,)
        self._frames: deque[tuple[np.ndarray, float]] = deque()  # (frame (F,), arrival time)
        self._playing = False
        self.underruns = 0  # times the buffer ran dry while playing
        self.overflows = 0  # frames dropped because the buffer was full

    @property
    def depth(self) -> int:
        return len(self._frames)

    def write(self, samples: np.ndarray, arrival: float) -> int:
        """Append client samples (N,); returns how many whole frames they completed."""
        audio = np.concatenate([self._partial, samples.astype(np.float32, copy=False)])
        count = audio.shape[0] // self.frame_size
        for i in range(count):
            self._frames.append((audio[i * self.frame_size : (i + 1) * self.frame_size], arrival))
        self._partial = audio[count * self.frame_size :].copy()
        while len(self._frames) > self.max_frames:
            self._frames.popleft()
            self.overflows += 1
        return count

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next frame and its arrival time, or None (the caller feeds silence)."""
        if not self._playing and len(self._frames) < self.prefill_frames:
            return None
        if not self._frames:
            self._playing = False
            self.underruns += 1
            return None
        self._playing = True
        return self._frames.popleft()

    def read_tick(self) -> list[tuple[np.ndarray, float]]:
        """This tick's frames with their arrival times, oldest first: none (the caller feeds
        silence), one, or two to catch up."""
        spare = self.depth > self.prefill_frames
        self._spare_ticks = self._spare_ticks + 1 if spare else 0
        drain = self.drain_ticks > 0 and self._spare_ticks >= self.drain_ticks
        count = 2 if self.depth > self.catchup_frames or drain else 1
        if count == 2:
            self._spare_ticks = 0
        frames = []
        for _ in range(count):
            item = self.read()
            if item is None:
                break
            frames.append(item)
        return frames


def fade_out(tail: np.ndarray, fade: int) -> np.ndarray:
    """`tail` (N,) with a half-cosine fade to zero over its first `fade` samples, then zeros."""
    out = np.zeros_like(tail)
    n = min(fade, tail.shape[0])
    ramp = 0.5 * (1.0 + np.cos(np.pi * (np.arange(n) + 1) / n))  # (n,) from ~1 down to 0
    out[:n] = tail[:n] * ramp
    return out


def fade_in(frame: np.ndarray, fade: int) -> np.ndarray:
    out = frame.copy()
    n = min(fade, frame.shape[0])
    out[:n] *= 0.5 * (1.0 - np.cos(np.pi * np.arange(n) / n))  # (n,) from 0 up to ~1
    return out


class AudioOutput:
    """Paced sending of reply frames; frames carry the id of the reply they belong to."""

    def __init__(self, send: Callable[[np.ndarray], Awaitable[None]], lock: asyncio.Lock,
                 sample_rate: int, capacity_frames: int = 64, lead_ms: float = 80.0,
                 fade_ms: float = 5.0, holdback_ms: float = 10.0):  # fmt: skip
        self._send = send  # writes samples to the client (PCM16); called under `lock`
        self._lock = lock  # shared with JSON events, so that their order is the send order
        self.sample_rate = sample_rate
        self.capacity = capacity_frames
        self.lead_s = lead_ms / 1000.0
        self.fade = max(1, round(fade_ms * sample_rate / 1000))
        self.holdback = max(self.fade, round(holdback_ms * sample_rate / 1000))
        self._queue: deque[tuple[int, np.ndarray | None]] = deque()  # None marks a reply's end
        self._tail: np.ndarray | None = None  # held-back samples of the current reply
        self._tail_reply = -1
        self._clock: float | None = None  # when the client will have played all it was sent
        self._wake = asyncio.Event()
        self._fade_in = False
        self.paused = False
        self.sent: Counter[int] = Counter()  # samples sent per reply id
        self.finished: set[int] = set()  # replies whose end marker went out
        self.overflows = 0

    @property
    def queued_frames(self) -> int:
        return sum(frame is not None for _, frame in self._queue)

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.queued_frames)

    def push(self, reply: int, frame: np.ndarray) -> None:
        if self.queued_frames >= self.capacity:  # the client is not keeping up: drop the oldest
            index = next(i for i, (_, f) in enumerate(self._queue) if f is not None)
            del self._queue[index]
            self.overflows += 1
        self._queue.append((reply, frame))
        self._wake.set()

    def end_reply(self, reply: int) -> None:
        self._queue.append((reply, None))
        self._wake.set()

    def heard_samples(self, reply: int) -> int:
        return self.sent[reply]

    async def pause(self) -> None:
        """Stop sending now: fade out the held-back tail; queued frames wait for `resume`."""
        async with self._lock:
            self.paused = True
            await self._flush_tail(fade=True)

    def resume(self) -> None:
        self.paused = False
        self._fade_in = True
        self._wake.set()
        if self._clock is not None:  # the pause left a gap: pace from now
            self._clock = max(self._clock, time.monotonic())

    async def cut(self) -> int:
        """Fade out and drop every queued frame; returns how many were dropped."""
        async with self._lock:
            await self._flush_tail(fade=True)
            dropped = self.queued_frames
            self._queue.clear()
            self.paused, self._fade_in = False, False
        return dropped

    async def _flush_tail(self, fade: bool) -> None:
        if self._tail is not None:
            tail = fade_out(self._tail, self.fade) if fade else self._tail
            await self._send(tail)
            self.sent[self._tail_reply] += tail.shape[0]
            self._tail = None

    async def run(self) -> None:
        """The output task."""
        while True:
            if self.paused or not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            if self._clock is not None and self._clock - now > self.lead_s:
                await asyncio.sleep(self._clock - now - self.lead_s)
            async with self._lock:
                if self.paused or not self._queue:
                    continue
                reply, frame = self._queue.popleft()
                if frame is None:  # the reply ended: its tail goes out as it is
                    await self._flush_tail(fade=False)
                    self.finished.add(reply)
                    continue
                await self._send_frame(reply, frame)

    async def _send_frame(self, reply: int, frame: np.ndarray) -> None:
        if self._fade_in:
            frame, self._fade_in = fade_in(frame, self.fade), False
        if self._tail is not None and self._tail_reply != reply:
            await self._flush_tail(fade=True)  # a reply ended without its marker (dropped)
        audio = frame if self._tail is None else np.concatenate([self._tail, frame])
        head, self._tail, self._tail_reply = audio[: -self.holdback], audio[-self.holdback :], reply
        await self._send(head)
        self.sent[reply] += head.shape[0]
        now = time.monotonic()
        start = now if self._clock is None or self._clock < now else self._clock
        self._clock = start + frame.shape[0] / self.sample_rate


class UtteranceBuffer:
    """Turn mode: collect the user's utterance, then feed it to the engine, then silence.

    The speech onset is only known `min_speech_ms` late, so the last `preroll_frames`
    frames are always kept and open the utterance.
    """

    def __init__(self, frame_size: int, preroll_frames: int, max_silence_frames: int):
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, preroll_frames))
        self.frames: list[np.ndarray] | None = None  # the utterance being collected, if any
        self._feed: deque[np.ndarray] = deque()
        self._silence = np.zeros(frame_size, np.float32)
        self.max_silence_frames = max_silence_frames
        self._silence_fed = max_silence_frames

    @property
    def collecting(self) -> bool:
        return self.frames is not None

    @property
    def exhausted(self) -> bool:
        """The utterance and all the silence allowed after it went to the engine."""
        return not self._feed and self._silence_fed >= self.max_silence_frames

    def hear(self, live: list[np.ndarray], onset: bool) -> None:
        self._preroll.extend(live)
        if onset:
            self.frames = list(self._preroll)
        elif self.frames is not None:
            self.frames.extend(live)

    def discard(self) -> None:
        self.frames = None

    def start_feed(self) -> None:
        self._feed, self.frames, self._silence_fed = deque(self.frames or ()), None, 0

    def feed(self, count: int) -> list[np.ndarray]:
        """Up to `count` frames for the engine: the utterance first, then silence."""
        frames = []
        for _ in range(count):
            if self._feed:
                frames.append(self._feed.popleft())
            elif self._silence_fed < self.max_silence_frames:
                frames.append(self._silence)
                self._silence_fed += 1
        return frames

    def stop_feed(self) -> None:
        self._feed.clear()
        self._silence_fed = self.max_silence_frames

    def reset(self) -> None:
        self.discard()
        self.stop_feed()
