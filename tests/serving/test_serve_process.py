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
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from telugu_s2s.client import S2SClient
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.serving.ports import DEFAULT_PORTS
from tests.serving.conftest import silence
from tests.serving.fakes import tone


@contextlib.contextmanager
def serve_process(tmp: Path, name: str, *overrides: str):
    """Start the server with the fake engine; yields (process, port, log path)."""
    port_file, log_path = tmp / f"{name}.port", tmp / f"{name}.log"
    port_file.unlink(missing_ok=True)
    args = [sys.executable, "-m", "telugu_s2s.serve", "engine._target_=tests.serving.fakes.FakeEngine",
            "~engine.checkpoint_dir", "~engine.device", "~engine.max_slots", "~engine.speaker_guidance", "+engine.reply_frames=2", "+engine.reply_after_frames=2",
            f"server.store_url=sqlite:///{tmp}/state.db", f"port_file={port_file}",
            f"hydra.run.dir={tmp}/hydra-{name}", "log_level=warning", *overrides]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            if port_file.exists() and port_file.read_text():
                port = int(port_file.read_text())
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
            time.sleep(0.1)
        yield process, port, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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


def test_a_session_survives_sigkill_with_its_last_ten_turns_and_preferences(tmp_path):
    prefs = {"speaker": "lakshmi", "mode": "stream", "style": "casual", "vad_threshold": 0.35}

    async def twelve_turns(port: int) -> tuple[str, list[dict]]:
        async with S2SClient(f"ws://127.0.0.1:{port}", "ravi", "stream") as client:
            await client.send_json({"type": "config", **prefs})
            for k in range(12):  # a distinct pitch per turn: the fake transcribes it
                mark = len(client.timeline)
                await client.stream(
                    np.concatenate([tone(400 + 50 * k, 0.24), silence(0.08)]), realtime=False
                )
                await client.wait_for(lambda e: e["type"] == "turn", 20, after=mark)
            turns = [e for e in client.events if e["type"] == "turn"]
            return client.ready["session"], turns

    fast = ("port=0", "vad=false", "threads=null")
    with serve_process(tmp_path, "before", *fast) as (process, port, _):
        session, turns = asyncio.run(twelve_turns(port))
        os.kill(process.pid, signal.SIGKILL)  # no shutdown, no goodbye
        process.wait(10)
    assert [t["index"] for t in turns] == list(range(1, 13))

    async def resume(port: int) -> dict:
        async with S2SClient(f"ws://127.0.0.1:{port}", session=session) as client:
            return client.ready

    with serve_process(tmp_path, "after", *fast) as (_, port, _):
        ready = asyncio.run(resume(port))
        info = httpx.get(f"http://127.0.0.1:{port}/sessions/{session}").json()

    assert ready["resumed"] and ready["turns"] == 10 and ready["speaker"] == "lakshmi"
    assert [t["index"] for t in info["turns"]] == list(range(3, 13))  # exactly the last 10
    assert [t["user_text"] for t in info["turns"]] == [t["user_text"] for t in turns[2:]]
    assert len({t["user_text"] for t in info["turns"]}) == 10
    assert info["preferences"] == prefs
    assert info["analysis"]["turns"] == 12  # the aggregates still count all twelve
