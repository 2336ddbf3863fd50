"""Auth on every session route, origins, per-address and per-connection limits, session ids,
and the token staying out of every log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from telugu_s2s.client import S2SClient
from telugu_s2s.serving.auth import RedactSecrets, origin_allowed, token_matches
from telugu_s2s.serving.limits import ConnectionLimiter, LimitSettings, TokenBucket
from telugu_s2s.serving.server import ServerSettings
from tests.serving.conftest import silence
from tests.serving.fakes import FakeEngine, running_server, tone
from tests.serving.processes import serve_process

TOKEN = "tok-7d1c0a9e5b2f4c3d8e6a"  # distinctive, so a leak is unmistakable in a log
WEB_DIR = Path(__file__).resolve().parents[2] / "src" / "telugu_s2s" / "serving" / "web"


def settings(**overrides) -> ServerSettings:
    return ServerSettings(store_url=":memory:", stats_interval_s=0, **overrides)


def http(url: str) -> str:
    return url.replace("ws://", "http://")


async def connect(url: str, first: dict | None = None, **kw) -> S2SClient:
    """Open a raw session; send `first` before waiting for `ready` (the browser's way)."""
    client = S2SClient(url, **kw)
    from websockets.asyncio.client import connect as ws_connect

    client.t0 = asyncio.get_running_loop().time()
    client._ws = await ws_connect(client.url, additional_headers=client.headers or None)
    client._reader = asyncio.create_task(client._read())
    if first is not None:
        await client.send_json(first)
    client.ready = await client.wait_for(lambda e: e["type"] in ("ready", "error"), 10)
    return client


def test_every_session_route_needs_the_token():
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with running_server(FakeEngine(), settings(auth_token=TOKEN), vad=None) as (url, _):
        base = http(url)
        session = asyncio.run(_open_and_close(url, token=TOKEN))
        for path in (f"/sessions/{session}", "/stats", "/metrics"):
            assert httpx.get(base + path).status_code == 401, path
            wrong = httpx.get(base + path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            assert httpx.get(base + path, params={"token": TOKEN}).status_code == 401  # not in URLs
            assert httpx.get(base + path, headers=bearer).status_code == 200, path
        assert httpx.get(base + "/health").status_code == 200  # no session data: public
        assert httpx.get(base + "/").status_code == 200
    with running_server(
        FakeEngine(), settings(auth_token=TOKEN, public_metrics=True), vad=None
    ) as (url, _):
        assert httpx.get(http(url) + "/stats").status_code == 200
        assert httpx.get(http(url) + "/metrics").status_code == 200
        assert httpx.get(http(url) + "/sessions/x").status_code == 401


async def _open_and_close(url: str, **kw) -> str:
    async with S2SClient(url, "ravi", **kw) as client:
        assert client.ready["type"] == "ready", client.ready
        return client.ready["session"]


def test_websocket_token_by_header_or_first_message_never_by_url():
    with running_server(FakeEngine(), settings(auth_token=TOKEN, auth_timeout_s=1.0), vad=None) as (
        url,
        app,
    ):

        async def scenario():
            by_header = await connect(url, token=TOKEN)
            by_message = await connect(url, first={"type": "auth", "token": TOKEN})
            # a session authorised by header may still send the page's auth message: ignored
            await by_header.send_json({"type": "auth", "token": TOKEN})
            await by_header.stream(np.concatenate([tone(500, 0.3), silence(0.2)]), realtime=False)
            turn = await by_header.wait_for(lambda e: e["type"] == "turn", 20)
            refused = [
                await connect(url, first={"type": "auth", "token": "guess"}),
                await connect(url, first={"type": "config", "speaker": "ravi"}),  # no auth first
                await connect(url),  # says nothing: times out
                await connect(url + f"/ws?token={TOKEN}"),
            ]
            for client in (by_header, by_message, *refused):
                await asyncio.sleep(0.1)
                closed = client.closed
                await client.close()
                client.closed = closed
            return by_header, by_message, turn, refused

        by_header, by_message, turn, refused = asyncio.run(scenario())
        errors = app.state.hub.errors

    assert by_header.ready["type"] == by_message.ready["type"] == "ready"
    assert turn["index"] == 1 and not [e for e in by_header.events if e["type"] == "error"]
    for client in refused:
        assert client.ready["type"] == "error" and client.ready["code"] == "unauthorized"
        assert client.closed  # and the server hung up
    assert "URL" in refused[-1].ready["message"]
    assert errors["unauthorized"] == 4


def test_session_ids_are_random_and_never_chosen_by_the_client():
    with running_server(FakeEngine(), settings(), vad=None) as (url, _):

        async def scenario():
            first = await connect(url)
            chosen = await connect(url, session="my-easy-id")
            await chosen.wait_for(lambda e: e.get("code") == "unknown_session", 5)
            resumed = await connect(url, session=first.ready["session"])  # after `first` closes?
            for client in (first, chosen, resumed):
                await client.close()
            return first.ready, chosen.ready, resumed.ready

        first, chosen, busy = asyncio.run(scenario())
    assert len(first["session"]) == 22 and first["session"] != chosen["session"]  # 128 bits
    assert chosen["type"] == "ready" and chosen["session"] != "my-easy-id" and not chosen["resumed"]
    assert busy["code"] == "session_busy"  # the known id exists: it was found, not recreated


def test_websocket_origin_allowlist():
    with running_server(FakeEngine(), settings(), vad=None) as (url, _):
        host = url.removeprefix("ws://")

        async def ready_for(origin: str | None) -> dict:
            client = await connect(url, headers={"Origin": origin} if origin else None)
            await client.close()
            return client.ready

        results = {
            origin: asyncio.run(ready_for(origin))
            for origin in (
                None,
                f"http://{host}",
                "http://localhost:5173",
                "https://evil.example",
                "null",
            )
        }
    assert [r["type"] for r in results.values()] == ["ready", "ready", "ready", "error", "error"]
    assert results["https://evil.example"]["code"] == "forbidden_origin"


def test_origin_rules():
    default = ["self", "localhost"]
    assert origin_allowed(None, "h:1", default)  # not a browser
    assert origin_allowed("http://h:1", "h:1", default)
    assert origin_allowed("http://127.0.0.1:9", "h:1", default)
    assert not origin_allowed("http://h:2", "h:1", default)
    assert not origin_allowed("http://localhost.evil.example", "h:1", default)
    assert origin_allowed("https://app.example.com/", "h:1", ["https://app.example.com"])
    assert not origin_allowed("http://localhost:3", "h:1", ["https://app.example.com"])
    assert origin_allowed("https://anything", "h:1", ["*"])


def test_connection_limits_per_address():
    limits = LimitSettings(max_connections_per_ip=2, connections_per_minute_per_ip=600)
    with running_server(FakeEngine(), settings(limits=limits), vad=None) as (url, _):

        async def scenario():
            a, b = await connect(url), await connect(url)
            third = await connect(url)
            await a.close()
            for _ in range(50):  # the server sees `a` leave shortly after
                fourth = await connect(url)
                if fourth.ready["type"] == "ready":
                    break
                await asyncio.sleep(0.05)
            await b.close()
            await fourth.close()
            return third.ready, fourth.ready

        third, fourth = asyncio.run(scenario())
    assert third["code"] == "too_many_connections" and fourth["type"] == "ready"


def test_connection_rate_and_token_buckets_with_a_fake_clock():
    now = [0.0]
    limiter = ConnectionLimiter(LimitSettings(max_connections_per_ip=100, connections_per_minute_per_ip=60),
                                clock=lambda: now[0])  # fmt: skip
    granted = [limiter.acquire("1.2.3.4") for _ in range(8)]
    assert granted[:6] == [None] * 6 and granted[6][0] == "connection_rate"  # a burst of 6
    assert limiter.acquire("5.6.7.8") is None  # other addresses are not affected
    now[0] += 2.0  # one a second comes back
    assert [limiter.acquire("1.2.3.4") is None for _ in range(3)] == [True, True, False]
    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(20)) == 5
    now[0] += 0.5
    assert sum(bucket.take() for _ in range(20)) == 5


def test_message_floods_are_dropped_with_an_error_and_the_session_goes_on():
    limits = LimitSettings(messages_per_s=50, text_messages_per_s=5, burst_s=1)
    engine = FakeEngine(reply_frames=3, reply_after_frames=2)
    with running_server(engine, settings(limits=limits), vad=None) as (url, app):

        async def scenario():
            client = await connect(url)
            for _ in range(200):  # a flood of config messages
                await client.send_json({"type": "config", "vad_threshold": 0.4})
            limited = await client.wait_for(lambda e: e.get("code") == "rate_limited", 10)
            await asyncio.sleep(1.2)  # the buckets refill
            await client.stream(np.concatenate([tone(500, 0.3), silence(0.2)]), realtime=False)
            turn = await client.wait_for(lambda e: e["type"] == "turn", 20)
            await client.close()
            return client, limited, turn

        client, limited, turn = asyncio.run(scenario())
        stored = app.state.hub.store.load(client.ready["session"])
    errors = [e for e in client.events if e.get("code") == "rate_limited"]
    assert "dropped" in limited["message"] and 1 <= len(errors) <= 3  # one notice a second at most
    assert turn["index"] == 1 and stored.preferences.vad_threshold == 0.4


def test_sessions_end_at_the_length_limit():
    engine = FakeEngine(reply_frames=2, reply_after_frames=2)
    with running_server(engine, settings(limits=LimitSettings(max_session_s=1.0)), vad=None) as (
        url,
        _,
    ):

        async def scenario():
            client = await connect(url)
            await client.stream(np.concatenate([tone(500, 0.3), silence(0.2)]), realtime=False)
            error = await client.wait_for(lambda e: e.get("code") == "session_too_long", 10)
            for _ in range(40):
                if client.closed:
                    break
                await asyncio.sleep(0.05)
            return client, error

        client, error = asyncio.run(scenario())
    assert "at most 1 s" in error["message"] and client.closed
    assert any(e["type"] == "turn" for e in client.events)  # the turn before it was kept


def test_token_comparison_and_log_redaction():
    assert token_matches(TOKEN, TOKEN) and not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches(None, TOKEN) and not token_matches(["x"], TOKEN)
    redactor = RedactSecrets([TOKEN])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /ws?speaker=a&token=%s %s",
                               ("abc", f"Bearer {TOKEN}"), None)  # fmt: skip
    redactor.filter(record)
    assert record.getMessage() == "GET /ws?speaker=a&token=[redacted] Bearer [redacted]"


def test_the_token_never_reaches_a_log(tmp_path):
    """A real server process at uvicorn's most verbose level, used every way a token can
    travel (and the one way it must not): no log line holds the token."""
    env = {**os.environ, "TELUGU_S2S_AUTH_TOKEN": TOKEN}
    overrides = ("port=0", "vad=false", "threads=null", "log_level=trace")
    with serve_process(tmp_path, "logs", *overrides, env=env, token=TOKEN) as (_, port, log_path):
        url, base = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        session = asyncio.run(_open_and_close(url, token=TOKEN))

        async def other_ways():
            by_message = await connect(url, first={"type": "auth", "token": TOKEN})
            in_url = await connect(url + f"/ws?token={TOKEN}")
            for client in (by_message, in_url):
                await client.close()
            return by_message.ready, in_url.ready

        by_message, in_url = asyncio.run(other_ways())
        assert httpx.get(f"{base}/sessions/{session}", headers=bearer).status_code == 200
        assert httpx.get(f"{base}/stats?token={TOKEN}").status_code == 401
        assert httpx.get(f"{base}/metrics", headers=bearer).status_code == 200
    assert by_message["type"] == "ready" and in_url["code"] == "unauthorized"
    written = [log_path, *(p for p in tmp_path.glob("hydra-logs/**/*") if p.is_file())]
    logs = {p: p.read_text(errors="replace") for p in written}  # hydra's log and config dump too
    text = "\n".join(logs.values())
    assert "GET /stats?token=[redacted]" in text and "/metrics" in text  # the access log ran
    assert "WebSocket /ws" in text
    assert TOKEN not in text, [line for line in text.splitlines() if TOKEN in line]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's module")
def test_the_web_page_connection_sends_the_token_first(tmp_path):
    """The page's own connection.js (Node's WebSocket, as in a browser: no headers) against
    a server with a token: the right token opens a session, a wrong one stops retrying."""
    script = tmp_path / "connect.mjs"
    script.write_text(f"""
const [host, token] = process.argv.slice(2);
globalThis.location = {{ protocol: "http:", host }};
const {{ Connection }} = await import({json.dumps((WEB_DIR / "connection.js").as_uri())});
const statuses = [];
const done = (result) => {{ console.log(JSON.stringify({{ ...result, statuses }})); process.exit(0); }};
const connection = new Connection({{
  onReady: (ready) => {{ connection.close(); done({{ ready }}); }},
  onEvent: (event) => statuses.push(event.code ?? event.type),
  onAudio: () => {{}},
  onStatus: (status) => {{ statuses.push(status); if (status === "failed") done({{}}); }},
}});
connection.open({{ speaker: "lakshmi", mode: "turn" }}, token);
setTimeout(() => done({{ timeout: true }}), 15000);
""")
    with running_server(FakeEngine(), settings(auth_token=TOKEN), vad=None) as (url, _):
        host = url.removeprefix("ws://")
        results = [
            json.loads(subprocess.run(["node", "--experimental-websocket", str(script), host, token],
                                      capture_output=True, text=True, timeout=60, check=True).stdout)
            for token in (TOKEN, "wrong")
        ]  # fmt: skip
    ok, wrong = results
    assert ok["ready"]["speaker"] == "lakshmi" and ok["ready"]["mode"] == "turn"
    assert "ready" not in wrong and "unauthorized" in wrong["statuses"]
    assert wrong["statuses"][-1] == "failed"  # a fatal error: no retry loop
