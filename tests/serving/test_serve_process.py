"""`python -m telugu_s2s.serve` as a real process: port fallback, the client CLI, and a
session that survives SIGKILL of the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import numpy as np
import pytest
import soundfile as sf
import sqlalchemy as sa

from telugu_s2s.client import S2SClient
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.serving.ports import DEFAULT_PORTS
from telugu_s2s.serving.store import SessionStore
from tests.serving.conftest import silence
from tests.serving.fakes import tone
from tests.serving.processes import serve_process


def _occupy(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _three_ports() -> tuple[list[int], bool]:
    """The real defaults (8000, 8080, 8010) when all are free here, else three free ports."""
    socks = []
    try:
        for port in DEFAULT_PORTS:
            socks.append(_occupy(port))
        return list(DEFAULT_PORTS), True
    except OSError:
        for sock in socks:
            sock.close()
        socks = [_occupy(0) for _ in range(3)]
        return [s.getsockname()[1] for s in socks], False
    finally:
        for sock in socks:
            sock.close()


def test_port_fallback_and_the_client_cli(tmp_path):
    ports, defaults = _three_ports()
    a, b, c = ports
    # the real default list when it is free here; no VAD or torch threads: a faster start
    override = ["vad=false", "threads=null"] + ([] if defaults else [f"ports=[{a},{b},{c}]"])
    blocker = _occupy(a)
    try:
        with serve_process(tmp_path, "first", *override) as (_, first_port, first_log):
            # with the first port taken, the server lands on the second...
            assert first_port == b
            # ...and with the second taken too (by that server), a second one lands on the third
            with serve_process(tmp_path, "second", *override) as (_, second_port, _):
                assert second_port == c
            wav = tmp_path / "in.wav"
            sf.write(wav, np.concatenate([tone(440, 0.5), silence(0.3)]), 16000)
            cli = f"{wav} --speaker priya --mode stream --url ws://127.0.0.1:{first_port} --tail 10"
            outputs = f"--out {tmp_path}/reply.wav --events {tmp_path}/events.json --stats {tmp_path}/stats.json"
            out = subprocess.run(
                [sys.executable, "-m", "telugu_s2s.client", *cli.split(), *outputs.split()],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
    finally:
        blocker.close()
    assert f"{a} taken" in first_log.read_text()  # the log says which port it got, and why
    reply, rate = sf.read(tmp_path / "reply.wav")
    assert rate == 16000 and reply.shape[0] == 2 * 1280 and np.abs(reply).max() > 0.3
    events = json.loads((tmp_path / "events.json").read_text())
    kinds = {e.get("type", e["kind"]) for e in events["timeline"]}
    assert {"ready", "sent", "audio", "turn"} <= kinds and all("t" in e for e in events["timeline"])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["sessions"]["total"] == 1 and stats["latency_ms"]["s2s"]["count"] > 0


async def turns_until(client: S2SClient, count: int, first_hz: float = 400.0) -> None:
    """Speak `count` short turns, each at its own pitch (the fake transcribes it)."""
    for k in range(count):
        mark = len(client.timeline)
        await client.stream(
            np.concatenate([tone(first_hz + 50 * k, 0.24), silence(0.08)]), realtime=False
        )
        await client.wait_for(lambda e: e["type"] == "turn", 20, after=mark)


async def talk_forever(client: S2SClient, turns_seen: list[int]) -> None:
    """Keep a session busy with turns until the connection dies."""
    with contextlib.suppress(Exception):
        for k in range(1000):
            await turns_until(client, 1, 300 + 25 * (k % 20))
            turns_seen.append(k)


def check_consistent(store_url: str) -> dict[str, int]:
    """Every stored session is whole: its window of turns ends at the turn its aggregates
    count, with no gap and every record and memory blob complete. Returns turns by session."""
    store = SessionStore(store_url)
    with store.engine.connect() as connection:
        ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM sessions"))]
    counts = {}
    for session_id in ids:
        loaded = store.load(session_id)
        indexes = [t.index for t in loaded.turns]
        counts[session_id] = loaded.aggregates.turns
        last = loaded.aggregates.turns
        assert indexes == list(range(max(1, last - 9), last + 1)), (session_id, indexes, last)
        for record in loaded.turns:
            assert record.memory is not None and record.memory.shape == (
                2,
            )  # the fake's (hz, heard)
            assert record.ended_at >= record.started_at > 0
    store.close()
    return counts


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sessions_survive_sigkill_mid_conversation_with_their_last_ten_turns(
    backend, tmp_path, request
):
    """SIGKILL while four sessions talk: nothing half-written is visible afterwards, and every
    session resumes (the 12-turn one with exactly its last 10 turns and its preferences)."""
    store_url = (
        f"sqlite:///{tmp_path}/state.db"
        if backend == "sqlite"
        else request.getfixturevalue("postgres").database()
    )
    prefs = {"speaker": "lakshmi", "mode": "stream", "style": "casual", "vad_threshold": 0.35}

    async def scenario(port: int, process) -> tuple[str, list[dict], list[str], list[list[int]]]:
        url = f"ws://127.0.0.1:{port}"
        async with S2SClient(url, "ravi", "stream") as client:
            await client.send_json({"type": "config", **prefs})
            await turns_until(client, 12)
            turns = [e for e in client.events if e["type"] == "turn"]
            busy = [await S2SClient(url, "priya").__aenter__() for _ in range(3)]
            seen: list[list[int]] = [[] for _ in busy]
            talkers = [
                asyncio.create_task(talk_forever(c, s)) for c, s in zip(busy, seen, strict=True)
            ]
            while min(len(s) for s in seen) < 2:  # every one of them is mid-conversation
                await asyncio.sleep(0.05)
            await client.stream(tone(700, 0.2), realtime=False)  # and this one mid-turn
            os.kill(process.pid, signal.SIGKILL)  # no shutdown, no goodbye
            await asyncio.gather(*talkers)
            for other in busy:
                await other.close()
            return client.ready["session"], turns, [c.ready["session"] for c in busy], seen

    fast = ("port=0", "vad=false", "threads=null")
    with serve_process(tmp_path, "before", *fast, store_url=store_url) as (process, port, _):
        session, turns, others, seen = asyncio.run(scenario(port, process))
        process.wait(10)
    assert [t["index"] for t in turns] == list(range(1, 13))
    stored = check_consistent(store_url)
    assert stored[session] == 12  # the half-spoken 13th turn was never committed
    for other, spoken in zip(others, seen, strict=True):
        assert stored[other] >= len(spoken)  # every turn the client saw is stored

    async def resume(port: int, session_id: str) -> dict:
        async with S2SClient(f"ws://127.0.0.1:{port}", session=session_id) as client:
            return client.ready

    with serve_process(tmp_path, "after", *fast, store_url=store_url) as (_, port, _):
        ready = asyncio.run(resume(port, session))
        resumed_others = [asyncio.run(resume(port, other)) for other in others]
        info = httpx.get(f"http://127.0.0.1:{port}/sessions/{session}").json()

    assert ready["resumed"] and ready["turns"] == 10 and ready["speaker"] == "lakshmi"
    assert [t["index"] for t in info["turns"]] == list(range(3, 13))  # exactly the last 10
    assert [t["user_text"] for t in info["turns"]] == [t["user_text"] for t in turns[2:]]
    assert len({t["user_text"] for t in info["turns"]}) == 10
    assert info["preferences"] == prefs
    assert info["analysis"]["turns"] == 12  # the aggregates still count all twelve
    for other, ready_other in zip(others, resumed_others, strict=True):
        assert ready_other["resumed"] and ready_other["turns"] == min(10, stored[other])
