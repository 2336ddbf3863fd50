"""10,000 hostile frames against a live server (benchmarks/fuzz.py's harness): it stays up,
answers with `error` events, and a normal session's audio keeps flowing throughout."""

from __future__ import annotations

import asyncio

import httpx
from benchmarks.fuzz import KINDS, MAX_MESSAGE_BYTES, run_fuzz

from telugu_s2s.serving.limits import LimitSettings
from telugu_s2s.serving.server import ServerSettings
from tests.serving.fakes import FakeEngine, running_server


def test_ten_thousand_fuzz_frames_leave_the_server_serving():
    limits = LimitSettings(messages_per_s=3000, text_messages_per_s=40, burst_s=1,
                           connections_per_minute_per_ip=100_000, max_connections_per_ip=64)  # fmt: skip
    settings = ServerSettings(store_url=":memory:", max_message_bytes=MAX_MESSAGE_BYTES,
                              stats_interval_s=0, limits=limits)  # fmt: skip
    engine = FakeEngine(reply_frames=4, reply_after_frames=2)
    with running_server(engine, settings, vad=None) as (url, app):
        report = asyncio.run(run_fuzz(url, frames=10_000, connections=4, seed=17))
        health = httpx.get(url.replace("ws://", "http://") + "/health", timeout=10).json()
        server_errors = dict(app.state.hub.errors)

    assert sum(report["frames"].values()) == 10_000 and set(report["frames"]) == set(KINDS)
    # every kind of bad input got its own clear answer...
    for code in ("bad_audio", "bad_json", "bad_message", "unknown_type", "too_large", "bad_config",
                 "unknown_speaker", "bad_style", "rate_limited"):  # fmt: skip
        assert report["errors"].get(code, 0) > 0, (code, report["errors"])
    # ...or, below the application, the protocol layer's: 1007 (not UTF-8), 1009 (too big).
    # A hang-up there can reach the client before the close frame does (1006), but only on a
    # connection that sent such a frame: any other abnormal close is a server fault.
    closes = set(report["closes"])
    assert "1007" in closes and closes & {"1009", "1006"} and "1011" not in closes, closes
    assert report["unexplained_hang_ups"] == 0, report["closes"]
    assert "engine_error" not in server_errors and health["status"] == "ok"
    # the well-behaved session was served all along
    assert report["victim_ready"] == "ready" and report["victim_errors"] == []
    assert report["victim_turns_during_fuzz"] >= 3 and report["victim_audio_s"] > 0
