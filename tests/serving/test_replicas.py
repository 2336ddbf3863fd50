"""Two server processes on one PostgreSQL: a session started on one replica resumes on the
other with its last 10 turns, and both see what either writes."""

from __future__ import annotations

import asyncio

import httpx

from telugu_s2s.client import S2SClient
from tests.serving.processes import serve_process
from tests.serving.test_serve_process import turns_until


def test_a_session_moves_between_replicas_with_its_last_ten_turns(postgres, tmp_path):
    store_url = postgres.database()
    prefs = {"speaker": "arjun", "mode": "stream", "style": "formal", "vad_threshold": 0.45}
    fast = ("port=0", "vad=false", "threads=null")
    with (
        serve_process(tmp_path, "replica-a", *fast, store_url=store_url) as (_, port_a, _),
        serve_process(tmp_path, "replica-b", *fast, store_url=store_url) as (_, port_b, _),
    ):
        a, b = f"ws://127.0.0.1:{port_a}", f"ws://127.0.0.1:{port_b}"

        async def scenario():
            async with S2SClient(a, "ravi", "stream") as client:
                await client.send_json({"type": "config", **prefs})
                await turns_until(client, 12)
                session = client.ready["session"]
                spoken = [e for e in client.events if e["type"] == "turn"]
            async with S2SClient(b, session=session) as moved:  # replica A is still up
                await turns_until(moved, 1, first_hz=1200)
                return session, spoken, moved

        session, spoken, moved = asyncio.run(scenario())
        on_b = httpx.get(f"http://127.0.0.1:{port_b}/sessions/{session}").json()
        on_a = httpx.get(f"http://127.0.0.1:{port_a}/sessions/{session}").json()

    ready = moved.ready
    assert ready["type"] == "ready" and ready["resumed"] and ready["turns"] == 10
    assert ready["speaker"] == "arjun" and ready["style"] == "formal"
    turn_on_b = next(e for e in moved.events if e["type"] == "turn")
    assert turn_on_b["index"] == 13  # numbering carries on from replica A
    assert [t["index"] for t in on_b["turns"]] == list(range(4, 14))
    assert [t["user_text"] for t in on_b["turns"][:9]] == [t["user_text"] for t in spoken[3:]]
    assert on_b["preferences"] == prefs and on_b["analysis"]["turns"] == 13
    assert on_a["turns"] == on_b["turns"]  # replica A reads what B wrote
