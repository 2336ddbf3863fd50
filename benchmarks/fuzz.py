"""Fuzz the WebSocket server with malformed and hostile frames while a normal session talks.

    .venv/bin/python benchmarks/fuzz.py [--frames 20000] [--connections 4] [--seed 0]

Starts `python -m telugu_s2s.serve` around the fake engine (tests/serving/fakes.py) on a
free loopback port, then `--connections` fuzzing clients send `--frames` frames of the kinds
in `KINDS` (reconnecting whenever the server hangs up on them) while one well-behaved
"victim" session keeps speaking turns. Writes benchmarks/results/fuzz.json: frames by kind,
error events by code, connection closes by close code, the victim's turns and audio, and
whether the server stayed up. `run_fuzz` is also what tests/serving/test_fuzz.py runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # tests.serving: the fake engine and the process helper

from telugu_s2s.client import S2SClient  # noqa: E402

KINDS = (
    "random_binary",  # random bytes, odd and even lengths
    "random_text",  # random unicode (Telugu, control characters, emoji)
    "invalid_utf8",  # a text frame whose bytes are not UTF-8: the protocol layer closes (1007)
    "bad_json",  # truncated, deeply nested, NaN, huge numbers
    "wrong_shape_json",  # valid JSON of the wrong shape: lists, missing or odd types, bad config
    "huge_binary",  # over max_message_bytes
    "huge_text",
    "out_of_order",  # bye then more, server event types, stray auth and interrupt, ...
    "config_flood",  # a burst of valid config messages (store writes): rate limited
    "oversized_frame",  # over the WebSocket frame limit itself: the protocol layer closes (1009)
)
MAX_MESSAGE_BYTES = 64 * 1024  # the fuzz server's limit (settings below), so huge frames stay cheap
FRAME_LIMIT = 16 << 20  # uvicorn's ws_max_size in `serve` for this limit


def server_overrides() -> list[str]:
    """Limits loose enough that most frames reach the parser; floods still hit them."""
    return ["vad=false", "threads=null", f"server.max_message_bytes={MAX_MESSAGE_BYTES}",
            "server.stats_interval_s=0", "server.limits.messages_per_s=3000",
            "server.limits.text_messages_per_s=40", "server.limits.burst_s=1",
            "server.limits.connections_per_minute_per_ip=100000", "server.limits.max_connections_per_ip=64"]  # fmt: skip


def frame(kind: str, rng: random.Random) -> list[tuple[bytes | str, bool]]:
    """The message(s) of one fuzz frame: (payload, sent as a text frame)."""
    r = rng.random
    if kind == "random_binary":
        return [(rng.randbytes(rng.choice([0, 1, 3, 2, 640, 2560, 4001])), False)]
    if kind == "random_text":
        alphabet = 'ఆఇఈఉనమస్కారం{}[]":,\x00\x07\n\t abc😀\u202e'
        return [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))), True)]
    if kind == "invalid_utf8":
        return [
            (
                rng.choice(
                    [b"\xff\xfe", b'{"type": "config\xc3\x28"}', b"\xed\xa0\x80", rng.randbytes(64)]
                ),
                True,
            )
        ]
    if kind == "bad_json":
        return [(rng.choice(['{"type": "config"', "[" * 5000 + "]" * 5000, '{"type": NaN}', '{"vad_threshold": 1e999}',
                             "{" * 100000, '{"type": "config", "vad_threshold": Infinity}', "null", "", "\ufeff{}"]), True)]  # fmt: skip
    if kind == "wrong_shape_json":
        return [(json.dumps(rng.choice([
            [1, 2], 5, "config", {}, {"type": 7}, {"type": None}, {"type": ["config"]},
            {"type": "config", "speaker": 5}, {"type": "config", "speaker": {"$ne": 1}},
            {"type": "config", "vad_threshold": "0.5"}, {"type": "config", "vad_threshold": True},
            {"type": "config", "mode": None}, {"type": "config", "style": "x" * 10000},
            {"type": "config", "unknown": 1}, {"type": "interrupt", "extra": [1] * 100},
        ])), True)]  # fmt: skip
    if kind == "huge_binary":
        return [(bytes(MAX_MESSAGE_BYTES + 2 * rng.randint(1, 5000)), False)]
    if kind == "huge_text":
        return [
            (
                '{"type": "config", "pad": "'
                + "x" * (MAX_MESSAGE_BYTES + rng.randint(1, 9999))
                + '"}',
                True,
            )
        ]
    if kind == "out_of_order":
        return [rng.choice([
            (json.dumps({"type": "bye"}), True), (json.dumps({"type": "ready", "session": "x"}), True),
            (json.dumps({"type": "auth", "token": "x" * 100}), True), (json.dumps({"type": "interrupt"}), True),
            (json.dumps({"type": "turn", "index": -1}), True), (json.dumps({"type": "error", "code": "x"}), True),
        ])] + [(np.zeros(1280, "<i2").tobytes(), False)]  # fmt: skip
    if kind == "config_flood":
        return [
            (json.dumps({"type": "config", "vad_threshold": round(0.1 + 0.8 * r(), 3)}), True)
            for _ in range(50)
        ]
    if kind == "oversized_frame":
        return [(bytes(FRAME_LIMIT + 2), False)]
    raise ValueError(kind)


def plan(frames: int, rng: random.Random) -> list[str]:
    """`frames` kinds, spread evenly (config floods and oversized frames are rarer: a flood
    is 60 messages, an oversized frame 16 MiB)."""
    weights = {k: 1.0 for k in KINDS} | {
        "config_flood": 0.1,
        "oversized_frame": 0.003,
        "huge_binary": 0.3,
        "huge_text": 0.3,
        "invalid_utf8": 0.3,
        "out_of_order": 0.5,
    }
    kinds = list(weights)
    return rng.choices(kinds, weights=[weights[k] for k in kinds], k=frames)


async def _fuzzer(url: str, kinds: list[str], rng: random.Random, report: dict) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    queue = list(reversed(kinds))
    while queue:
        async with connect(url + "/ws", max_size=None, open_timeout=30) as ws:
            reader = asyncio.create_task(_read_errors(ws, report))
            sent: set[str] = set()
            try:
                while queue:
                    kind = queue.pop()
                    sent.add(kind)
                    for payload, as_text in frame(kind, rng):
                        await ws.send(payload, text=as_text)
                        report["messages"] += 1
                    report["frames"][kind] += 1
                    if kind in ("oversized_frame", "invalid_utf8") or rng.random() < 0.01:
                        await asyncio.sleep(0.01)  # let the server's answer (or hang-up) arrive
            except ConnectionClosed:
                report["frames"][kind] += 1  # sent or refused: the server hung up on it
            finally:
                await asyncio.sleep(0.05)
                reader.cancel()
                code = ws.close_code if ws.close_code is not None else "open"
                report["closes"][str(code)] += 1
                # The protocol layer hangs up on a frame over its limit or not UTF-8; frames
                # sent meanwhile can reset the socket before its close frame is read (1006).
                if code == 1006 and not sent & {"oversized_frame", "invalid_utf8"}:
                    report["unexplained_hang_ups"] += 1


async def _read_errors(ws, report: dict) -> None:
    async for message in ws:
        if isinstance(message, str):
            event = json.loads(message)
            if event.get("type") == "error":
                report["errors"][event["code"]] += 1


async def _victim(url: str, stop: asyncio.Event, report: dict) -> None:
    """A normal session: short turns, one after another, for as long as the fuzzing lasts."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4800) / 16000)).astype(np.float32)
    audio = np.concatenate([tone, np.zeros(1600, np.float32)])
    async with S2SClient(url, "priya", "stream") as client:
        report["victim_ready"] = client.ready["type"]
        while not stop.is_set():
            mark = len(client.timeline)
            await client.stream(audio, realtime=False)
            await client.wait_for(lambda e: e["type"] == "turn", 30, after=mark)
            report["victim_turns"] += 1
        report["victim_audio_s"] = round(client.audio().shape[0] / 16000, 2)
        report["victim_errors"] = [e["code"] for e in client.events if e["type"] == "error"]


async def run_fuzz(url: str, frames: int = 10_000, connections: int = 4, seed: int = 0) -> dict:
    rng = random.Random(seed)
    report = {
        "frames": Counter(),
        "messages": 0,
        "errors": Counter(),
        "closes": Counter(),
        "victim_turns": 0,
        "unexplained_hang_ups": 0,
    }
    kinds = plan(frames, rng)
    stop = asyncio.Event()
    victim = asyncio.create_task(_victim(url, stop, report))
    started = time.monotonic()
    share = [kinds[i::connections] for i in range(connections)]
    await asyncio.gather(
        *(_fuzzer(url, part, random.Random(seed + i + 1), report) for i, part in enumerate(share))
    )
    report["fuzz_s"] = round(time.monotonic() - started, 1)
    turns_during = report["victim_turns"]
    stop.set()
    await victim
    report["victim_turns_during_fuzz"] = turns_during
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in report.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "fuzz.json"
    )
    args = parser.parse_args()

    import httpx
    from tests.serving.processes import serve_process

    with tempfile.TemporaryDirectory() as tmp, serve_process(Path(tmp), "fuzz", "port=0", *server_overrides()) as (
        process, port, _):  # fmt: skip
        report = asyncio.run(
            run_fuzz(f"ws://127.0.0.1:{port}", args.frames, args.connections, args.seed)
        )
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
        report["server_alive"] = process.poll() is None and health["status"] == "ok"
    report.update(frames_total=sum(report["frames"].values()), server_errors=stats["errors"],
                  seed=args.seed, loadavg=os.getloadavg())  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
