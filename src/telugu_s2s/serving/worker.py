"""The batched model worker: one thread that owns the engine and the VAD.

Every tick (80 ms) the asyncio side hands over what each session asked for: one live input
frame for the VAD and zero or more frames for the engine. The worker thread runs the VAD for
all sessions as one batch and then `engine.step` over all slots as one batch; a session in
turn mode that catches up on a buffered utterance asks for several frames, which become
extra sub-steps of the same tick. Every other engine call (join, leave, silence, ...) goes
through the same single thread, so the engine never sees two calls at once, and the event
loop only awaits futures, never the models.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from telugu_s2s.serving.engine_api import Engine, StepResult
from telugu_s2s.serving.metrics import LatencyStats
from telugu_s2s.serving.vad import SileroVAD, VADState

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class StepRequest:
    slot: int
    vad_frame: np.ndarray | None  # live input for the VAD (one or two frames), or None
    vad_state: VADState | None
    engine_frames: list[np.ndarray]  # frames for the engine this tick, oldest first
    # Called on the event loop when the tick fires, before the batch runs: a session reads its
    # input here, so a frame that arrived during the previous tick's compute still makes it.
    prepare: Callable[[StepRequest], None] | None = None


@dataclass
class StepOutcome:
    vad_prob: float | None
    results: list[StepResult]
    timings: dict[str, float] = field(default_factory=dict)  # per-frame ms: vad, tick


class EngineWorker:
    def __init__(self, engine: Engine, vad: SileroVAD | None, frame_ms: float,
                 latency: LatencyStats | None = None):  # fmt: skip
        self.engine = engine
        self.vad = vad
        self.tick_s = frame_ms / 1000.0
        self.latency = latency or LatencyStats()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._pending: dict[int, tuple[StepRequest, asyncio.Future]] = {}
        self.ticks = 0
        self.overruns = 0  # ticks whose batch took longer than a frame
        self.frames = 0  # engine frames stepped

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an engine (or any) call on the worker thread and await it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    def cancel(self, slot: int) -> None:
        """Drop a queued step of `slot` (its session is leaving)."""
        entry = self._pending.pop(slot, None)
        if entry is not None and not entry[1].done():
            entry[1].cancel()

    async def step(self, request: StepRequest) -> StepOutcome:
        """Join the next tick's batch; resolves once that tick has run."""
        if request.slot in self._pending:
            raise RuntimeError(f"slot {request.slot} already has a step queued for this tick")
        future = asyncio.get_running_loop().create_future()
        self._pending[request.slot] = (request, future)
        return await future

    async def run(self) -> None:
        """The ticker: every tick_s, run whatever was requested as one batch."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic()
        while True:
            deadline += self.tick_s
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            batch, self._pending = self._pending, {}
            if batch:
                requests = [request for request, _ in batch.values()]
                for request in requests:
                    if request.prepare is not None:
                        request.prepare(request)
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._run_batch, requests)
                except Exception as exc:  # the engine failed: every session of the batch hears it
                    log.exception("engine batch failed")
                    for _, future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), outcome in zip(batch.values(), outcomes, strict=True):
                        if not future.done():  # the session may have gone meanwhile
                            future.set_result(outcome)
            self.ticks += 1
            if time.monotonic() > deadline + self.tick_s:  # fell a whole tick behind: re-anchor
                self.overruns += 1
                deadline = time.monotonic()

    def _run_batch(self, requests: list[StepRequest]) -> list[StepOutcome]:
        start = time.perf_counter()
        probs: list[float | None] = [None] * len(requests)
        vad_ms = 0.0
        with_vad = [
            i for i, r in enumerate(requests) if r.vad_frame is not None and r.vad_state is not None
        ]
        if self.vad is not None and with_vad:
            t0 = time.perf_counter()
            scores = self.vad(
                [requests[i].vad_frame for i in with_vad], [requests[i].vad_state for i in with_vad]
            )
            vad_ms = (time.perf_counter() - t0) * 1000 / len(with_vad)
            for i, p in zip(with_vad, scores, strict=True):
                probs[i] = p
                self.latency.record("vad", vad_ms)
        results: list[list[StepResult]] = [[] for _ in requests]
        for k in range(max((len(r.engine_frames) for r in requests), default=0)):
            rows = {r.slot: i for i, r in enumerate(requests) if len(r.engine_frames) > k}
            stepped = self.engine.step(
                {slot: requests[i].engine_frames[k] for slot, i in rows.items()}
            )
            for slot, i in rows.items():
                result = stepped[slot]
                results[i].append(result)
                for component, ms in result.timings.items():
                    self.latency.record(component, ms)
            self.frames += len(rows)
        tick_ms = (time.perf_counter() - start) * 1000
        self.latency.record("tick", tick_ms)
        return [
            StepOutcome(p, r, {"vad": vad_ms, "tick": tick_ms})
            for p, r in zip(probs, results, strict=True)
        ]

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
