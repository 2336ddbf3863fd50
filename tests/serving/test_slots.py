"""Slots under load: an idle session is released with an `idle` event, and turn mode hears
the utterance live (held silent) with an engine that can `hold`, then speaks at the endpoint.
Real server, fake engine; assertions are about order and content, never timing."""

from __future__ import annotations

import asyncio

import numpy as np

from telugu_s2s.client import S2SClient
from telugu_s2s.serving.server import ServerSettings
from tests.serving.conftest import silence
from tests.serving.fakes import FakeEngine, running_server, tone


class HoldingEngine(FakeEngine):
    """A fake engine that can be held silent: it hears everything, replies only when free."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.held: dict[int, bool] = {}

    def hold(self, slot: int, silent: bool = True) -> None:
        self._check_thread()
        self.held[slot] = silent
        self.calls.append(("hold", slot, silent))

    def step(self, frames):
        results = super().step(frames)
        for slot, result in results.items():
            if self.held.get(slot) and result.speaking:  # held: the reply waits, silent
                s = self.slots[slot]
                s.position -= 1
                result.audio, result.speaking, result.assistant_text = 0 * result.audio, False, ""
        return results


def test_an_idle_session_is_released_and_its_slot_reused():
    engine = FakeEngine(reply_frames=2, reply_after_frames=2, max_slots=1)
    settings = ServerSettings(store_url=":memory:", idle_timeout_s=0.6, stats_interval_s=0)
    with running_server(engine, settings, vad=None) as (url, _):

        async def scenario():
            async with S2SClient(url, "priya") as idle:
                await idle.stream(silence(0.4))  # an open tab: silence, then nothing at all
                event = await idle.wait_for(lambda e: e["type"] == "idle", 20)
                for _ in range(100):
                    if idle.closed:
                        break
                    await asyncio.sleep(0.05)
            async with S2SClient(url, "ravi") as next_one:  # the single slot is free again
                ready = next_one.ready
            return event, idle.closed, ready

        event, closed, ready = asyncio.run(scenario())
    assert event["idle_s"] == 0.6 and "slot" in event["message"]
    assert closed and ready["type"] == "ready"
    assert [c[0] for c in engine.calls if c[1] == 0][-1] == "leave"


def test_an_active_session_is_not_released():
    engine = FakeEngine(reply_frames=2, reply_after_frames=2)
    settings = ServerSettings(store_url=":memory:", idle_timeout_s=0.5, stats_interval_s=0)
    with running_server(engine, settings, vad=None) as (url, _):

        async def scenario():
            async with S2SClient(url, "priya") as client:
                for _ in range(4):  # speech every 0.4 s keeps it alive for 1.6 s
                    await client.stream(np.concatenate([tone(500, 0.2), silence(0.2)]))
                return [e["type"] for e in client.events], client.closed

        types, closed = asyncio.run(scenario())
    assert "idle" not in types and not closed


def test_turn_mode_hears_the_utterance_live_and_is_released_at_the_endpoint(speech):
    engine = HoldingEngine(reply_frames=3, reply_after_frames=6)
    settings = ServerSettings(store_url=":memory:", stats_interval_s=0)
    with running_server(engine, settings) as (url, _):

        async def scenario():
            async with S2SClient(url, "priya", "turn") as client:
                await client.stream(np.concatenate([speech["question"], silence(1.5)]))
                turn = await client.wait_for(lambda e: e["type"] == "turn", 20)
                return client, turn

        client, turn = asyncio.run(scenario())
    holds = [c[2] for c in engine.calls if c[0] == "hold"]
    assert holds[:3] == [True, False, True]  # held from the start, freed, held after the reply
    assert client.audio().shape[0] == 3 * 1280 and turn["assistant_text"]
    # The engine heard the utterance live, frame by frame: no burst of buffered frames.
    assert max(engine.batch_sizes) == 1 and engine.frames_by_slot[0] >= 40
